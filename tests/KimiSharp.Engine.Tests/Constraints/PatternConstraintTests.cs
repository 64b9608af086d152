using System.Diagnostics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KimiSharp.Engine.Constraints;

namespace KimiSharp.Engine.Tests.Constraints;

/// <summary><c>pattern</c>, <c>format</c> and <c>multipleOf</c> are enforced; what cannot be enforced is an error unless non-strict.</summary>
public sealed class PatternConstraintTests
{
    private static JsonSchemaMatcher StringWithPattern(string pattern, string extra = "") =>
        JsonSchemaMatcher.Compile($$"""{"type":"string","pattern":{{JsonSerializer.Serialize(pattern)}}{{extra}}}""");

    private static readonly JsonSerializerOptions RawUtf8 = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Patterns and strings on both sides of them; .NET's regex engine (ECMAScript mode) is the reference.</summary>
    public static readonly (string Pattern, string[] Candidates)[] Cases =
    [
        ("^(a+)+$", ["", "a", "aaaa", "aab", "b", "aaaaaaaaaaaa!"]),
        ("^[a-z]{2,4}-\\d{3}$", ["ab-123", "abcd-000", "a-123", "abcde-123", "ab-12", "AB-123", "ab-1234"]),
        ("colou?r", ["color", "colour", "my colour!", "colr", "COLOR", ""]),
        ("^ab|cd$", ["abx", "xcd", "xabx", "cdx", "ab", "cd"]),
        ("^\\w+@\\w+\\.(com|org)$", ["me@x.com", "a_1@b2.org", "me@x.net", "@x.com", "me@x.comm"]),
        ("^[^a-z\\d]*$", ["", "ABC", "A B!", "Ab", "A1", "ÉÀ"]),
        ("^\\u00e9+x?$", ["é", "ééx", "e", "éxx", "x"]),
        ("^.{3}$", ["abc", "a\nb", "ab", "é€c", "abcd"]),
        ("^[\\s\\S]{0,2}$", ["", "\n\t", "abc"]),
        ("^(?:\\d{3}|[A-F]{2}){2}$", ["123456", "12AB", "ABCD", "AB12", "1234", "ABC"]),
        ("^a{2,}b{0,1}\\.\\*$", ["aa.*", "aaab.*", "a.*", "aabb.*", "aa.x"]),
        ("^[\\-+]?0x[0-9a-fA-F]+$", ["0x1F", "-0xab", "+0x0", "0x", "0xg", "--0x1"]),
        ("^\\S+ \\S+$", ["a b", "ab", "a  b", "é ü"]),
        ("^x{,2}$", ["x{,2}", "xx", ""]),
    ];

    public static IEnumerable<object[]> CaseIndexes() => Cases.Select((_, i) => new object[] { i });

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void Pattern_accepts_exactly_what_the_regex_matches_however_the_json_string_is_escaped(int index)
    {
        var (pattern, candidates) = Cases[index];
        var matcher = StringWithPattern(pattern);
        var reference = new Regex(pattern, RegexOptions.ECMAScript);
        foreach (string candidate in candidates)
        {
            bool expected = reference.IsMatch(candidate);
            // Default escaping writes non-ASCII as \uXXXX (pairs for emoji); relaxed escaping writes raw UTF-8.
            Assert.True(expected == matcher.Matches(JsonSerializer.Serialize(candidate)), $"{pattern} on {JsonSerializer.Serialize(candidate)} (escaped): expected {expected}");
            Assert.True(expected == matcher.Matches(JsonSerializer.Serialize(candidate, RawUtf8)), $"{pattern} on {JsonSerializer.Serialize(candidate)} (raw): expected {expected}");
        }
    }

    [Fact]
    public void A_dash_beside_a_shorthand_class_is_literal_as_browsers_read_it()
    {
        var m = StringWithPattern("^[\\w-.]+$");
        Assert.True(m.Matches("\"a-b.c_1\""));
        Assert.False(m.Matches("\"a b\""));
        Assert.False(m.Matches("\"a+b\""));
    }

    [Fact]
    public void Catastrophic_pattern_runs_in_linear_time()
    {
        // ^(a+)+$ takes exponential time in a backtracking engine on "aaa…!"; the automaton reads each byte once.
        var matcher = StringWithPattern("^(a+)+$");
        string many = new('a', 200_000);
        var clock = Stopwatch.StartNew();
        Assert.True(matcher.Matches($"\"{many}\""));
        Assert.False(matcher.Matches($"\"{many}!\""));
        Assert.False(matcher.Matches("\"b\""));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    /// <summary>Sampling patterns: anchored ones close soon; the unanchored one needs a quote token to be drawn.</summary>
    public static readonly string[] SamplingPatterns =
    [
        "^(a+)+$", "^[a-z]{2,4}-\\d{3}$", "ab|cd", "^\\w+@[a-z]+\\.(com|org)$", "^[A-Z0-9 _.-]{1,5}$", "^\\u00e9+(x|😀)?$",
        "^\\d{4}-\\d{2}-\\d{2}$", "^(?:[0-9a-f]{2}:){2}[0-9a-f]{2}$",
    ];

    public static IEnumerable<object[]> SamplingIndexes() => SamplingPatterns.Select((_, i) => new object[] { i });

    [Theory]
    [MemberData(nameof(SamplingIndexes))]
    public void Sampling_under_a_pattern_always_yields_matching_strings(int index)
    {
        string pattern = SamplingPatterns[index];
        var matcher = StringWithPattern(pattern);
        var tokens = PatternVocabulary(3, 1500);
        var vocabulary = new TokenVocabulary(tokens);
        var reference = new Regex(pattern, RegexOptions.ECMAScript);
        int completed = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var constraint = new JsonConstraint(matcher, vocabulary);
            var bytes = Sample(constraint, vocabulary, seed, 400);
            if (!constraint.IsComplete) continue;
            completed++;
            string value = JsonSerializer.Deserialize<string>(bytes)!;
            Assert.True(reference.IsMatch(value), $"{pattern} does not match {JsonSerializer.Serialize(value)}");
        }
        Assert.True(completed >= 5, $"only {completed}/20 runs finished");
    }

    [Fact]
    public void Mask_equals_testing_every_token_on_its_own_inside_patterned_strings()
    {
        // The mask walks the trie with the automaton state in locals; it must allow exactly the tokens the matcher takes.
        var matcher = JsonSchemaMatcher.Compile("""
            {"type":"object","properties":{"id":{"type":"string","pattern":"^[A-Z]{2}\\d{2,3}$"},"word":{"type":"string","pattern":"é|x","maxLength":5},
             "day":{"type":"string","format":"date"}},"required":["id","word","day"]}
            """);
        ConstraintSamplingTests.AssertMaskEqualsMatcher(matcher, PatternVocabulary(5, 800), seeds: 3, steps: 40);
    }

    [Fact]
    public void Pattern_and_length_bounds_together_never_dead_end()
    {
        // Only "aaaa" (4) and "aaaaaaa" (7) lengths fit ^(aaaa|aaaaaaa)$ — with maxLength 5 the 7 must never be started.
        var m = StringWithPattern("^(a{4}|a{7})$", ""","maxLength":5""");
        Assert.True(m.Matches("\"aaaa\""));
        var state = m.Start;
        Assert.True(m.TryAdvance(ref state, "\"aaaa"u8));
        Assert.False(m.TryAdvance(ref state, "a"u8));
        Assert.Throws<ArgumentException>(() => StringWithPattern("^a{7}$", ""","maxLength":5"""));
        Assert.Throws<ArgumentException>(() => StringWithPattern("^[a-z]+$", ""","minLength":2,"maxLength":1"""));
    }

    [Fact]
    public void Multibyte_and_escaped_characters_are_refused_as_soon_as_no_completion_fits()
    {
        var ascii = StringWithPattern("^[a-z]+$");
        var state = ascii.Start;
        Assert.True(ascii.TryAdvance(ref state, "\"a"u8));
        Assert.False(ascii.TryAdvance(ref state, [0xC3])); // lead byte of é: no 2-byte character is allowed
        Assert.False(ascii.TryAdvance(ref state, "\\u01"u8)); // \u01xx holds no a-z
        var probe = state;
        Assert.True(ascii.TryAdvance(ref probe, "\\u006"u8));
        Assert.False(ascii.TryAdvance(ref probe, "0"u8)); // \u0060 is '`'
        Assert.True(ascii.TryAdvance(ref probe, "1\""u8)); // \u0061 is 'a'
        var newline = StringWithPattern("^a\\nb$");
        Assert.True(newline.Matches("\"a\\nb\""));
        Assert.True(newline.Matches("\"a\\u000ab\""));
        Assert.False(newline.Matches("\"a\\tb\""));
        var emoji = StringWithPattern("^😀$");
        Assert.True(emoji.Matches("\"\\ud83d\\ude00\""));
        Assert.True(emoji.Matches("\"😀\""));
        state = emoji.Start;
        Assert.False(emoji.TryAdvance(ref state, "\"\\ud83e"u8)); // the wrong high surrogate
    }

    [Theory]
    [InlineData("date", "2024-02-29", "2024-13-01")]
    [InlineData("date-time", "2024-02-29T23:59:59Z", "2024-02-29 12:00:00Z")]
    [InlineData("date-time", "2024-02-29T12:00:00.5+05:30", "2024-02-29T12:00Z")]
    [InlineData("time", "08:30:00Z", "8:30:00Z")]
    [InlineData("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000")]
    [InlineData("email", "first.last+tag@mail.example.org", "no-at-sign.example.org")]
    [InlineData("ipv4", "192.168.0.255", "256.1.1.1")]
    [InlineData("hostname", "api-2.example.com", "-bad.example.com")]
    [InlineData("uri", "https://example.com/a?b=c#d", "no scheme")]
    public void Known_formats_are_enforced(string format, string valid, string invalid)
    {
        var m = JsonSchemaMatcher.Compile($$"""{"type":"string","format":"{{format}}"}""");
        Assert.True(m.Matches(JsonSerializer.Serialize(valid)), valid);
        Assert.False(m.Matches(JsonSerializer.Serialize(invalid)), invalid);
    }

    [Fact]
    public void Enum_values_obey_the_string_and_number_keywords_beside_them()
    {
        var m = JsonSchemaMatcher.Compile("""{"enum":["ab","abc","x1",5,12,"zz"],"pattern":"^[a-z]+$","maxLength":2,"maximum":10}""");
        Assert.True(m.Matches("\"ab\""));
        Assert.True(m.Matches("\"zz\""));
        Assert.True(m.Matches("5"));
        Assert.False(m.Matches("\"abc\"")); // too long
        Assert.False(m.Matches("\"x1\"")); // digit
        Assert.False(m.Matches("12")); // above maximum
        Assert.Throws<ArgumentException>(() => JsonSchemaMatcher.Compile("""{"const":"abc","pattern":"^\\d+$"}"""));
    }

    [Fact]
    public void Unknown_formats_are_annotations()
    {
        var m = JsonSchemaMatcher.Compile("""{"type":"string","format":"x-color"}""");
        Assert.True(m.Matches("\"anything\""));
        Assert.Contains("#/format (x-color)", m.IgnoredKeywords);
    }

    [Fact]
    public void MultipleOf_is_enforced_for_integers_and_decimal_steps()
    {
        var sevens = JsonSchemaMatcher.Compile("""{"type":"integer","multipleOf":7,"minimum":-30,"maximum":30}""");
        foreach (int v in new[] { -28, -7, 0, 7, 21, 28 }) Assert.True(sevens.Matches(v.ToString()), v.ToString());
        foreach (int v in new[] { -35, -6, 1, 15, 29, 35 }) Assert.False(sevens.Matches(v.ToString()), v.ToString());
        var state = sevens.Start;
        Assert.False(sevens.TryAdvance(ref state, "29"u8)); // no multiple of 7 in [29, 30] nor above
        var wholeNumber = JsonSchemaMatcher.Compile("""{"type":"number","multipleOf":5}""");
        Assert.True(wholeNumber.Matches("15"));
        Assert.False(wholeNumber.Matches("12"));
        var cents = JsonSchemaMatcher.Compile("""{"type":"number","multipleOf":0.01,"minimum":0}""");
        Assert.True(cents.Matches("12.34"));
        Assert.True(cents.Matches("7"));
        Assert.False(cents.Matches("12.345"));
        Assert.False(cents.Matches("1e-3"));

        var tokens = ConstraintSamplingTests.RandomVocabulary(4, 1500, 0);
        var vocabulary = new TokenVocabulary(tokens);
        var thirteens = JsonSchemaMatcher.Compile("""{"type":"array","items":{"type":"integer","multipleOf":13},"minItems":1,"maxItems":5}""");
        int completed = 0;
        for (int seed = 0; seed < 15; seed++)
        {
            var constraint = new JsonConstraint(thirteens, vocabulary);
            var bytes = Sample(constraint, vocabulary, seed, 300);
            if (!constraint.IsComplete) continue;
            completed++;
            foreach (var item in JsonNode.Parse(bytes)!.AsArray())
                Assert.Equal(0, item!.GetValue<long>() % 13);
        }
        Assert.True(completed >= 5, $"only {completed}/15 runs finished");
    }

    [Theory]
    [InlineData("""{"type":"object","properties":{"tags":{"type":"array","uniqueItems":true}}}""", "uniqueItems", "#/properties/tags")]
    [InlineData("""{"type":"object","properties":{"a":{"not":{"type":"string"}}}}""", "not", "#/properties/a")]
    [InlineData("""{"if":{"type":"string"},"then":{"maxLength":3}}""", "if", "#")]
    [InlineData("""{"type":"object","patternProperties":{"^x":{"type":"string"}}}""", "patternProperties", "#")]
    [InlineData("""{"type":"array","contains":{"type":"integer"}}""", "contains", "#")]
    [InlineData("""{"type":"object","dependentRequired":{"a":["b"]}}""", "dependentRequired", "#")]
    [InlineData("""{"type":"string","pattern":"^(?=a)\\w+$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(a)\\1$"}""", "pattern", "#")]
    [InlineData("""{"type":"number","multipleOf":0.3}""", "multipleOf", "#")]
    [InlineData("""{"type":"string","pattern":"^(a|b)*a(a|b){20}$"}""", "pattern", "#")] // needs 2^21 DFA states
    [InlineData("""{"$defs":{"x":{"type":"string"}},"type":"object","properties":{"r":{"$ref":"#/$defs/x","minLength":2}}}""", "minLength", "#/properties/r")]
    [InlineData("""{"allOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"properties":{"a":{"type":"integer"}}}]}""", "allOf", "#")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"}},"minProperties":1}""", "minProperties", "#")]
    [InlineData("""{"$ref":"https://example.com/schema.json"}""", "$ref", "#")]
    public void Unenforceable_keyword_in_a_strict_schema_is_an_error_naming_it_and_its_path(string schema, string keyword, string path)
    {
        var e = Assert.Throws<UnsupportedSchemaKeywordException>(() => JsonSchemaMatcher.Compile(schema));
        Assert.IsAssignableFrom<ArgumentException>(e);
        Assert.Equal(keyword, e.Keyword);
        Assert.Equal(path, e.SchemaPath);
        Assert.Contains($"'{keyword}'", e.Message);
        Assert.Contains(path, e.Message);

        var lenient = JsonSchemaMatcher.Compile(schema, new JsonSchemaOptions { Strict = false });
        Assert.Contains(lenient.IgnoredKeywords, k => k.StartsWith(path == "#" ? "#/" : path + "/", StringComparison.Ordinal) && k.Contains(keyword, StringComparison.Ordinal));
    }

    [Fact]
    public void Annotations_and_no_op_values_are_fine_in_strict_schemas()
    {
        var m = JsonSchemaMatcher.Compile("""
            {"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x","$comment":"c","title":"T","description":"D",
             "type":"object","properties":{"a":{"type":"array","uniqueItems":false,"deprecated":true,"readOnly":true,"writeOnly":false,
             "examples":[[1]],"default":[]},"b":{"type":"string","contentMediaType":"text/plain","contentEncoding":"base64"}},
             "dependentRequired":{}, "x-vendor":1}
            """);
        Assert.True(m.Matches("""{"a":[1,1],"b":"z"}"""));
        Assert.Empty(m.IgnoredKeywords);
    }

    /// <summary>Single bytes plus random tokens made of the characters the patterns above use (and quotes, escapes, multibyte).</summary>
    private static List<byte[]?> PatternVocabulary(int seed, int randomTokens)
    {
        const string pieces = "abcdexyzABCZ0123456789-@._:\"\\uéü€😀 !";
        var random = new Random(seed);
        var runes = pieces.EnumerateRunes().Select(r => Encoding.UTF8.GetBytes(r.ToString())).ToArray();
        var tokens = new List<byte[]?>();
        for (int b = 0; b < 256; b++) tokens.Add([(byte)b]);
        var seen = new HashSet<string>();
        while (tokens.Count < 256 + randomTokens)
        {
            var bytes = new List<byte>();
            int length = random.Next(1, 5);
            for (int i = 0; i < length; i++) bytes.AddRange(runes[random.Next(runes.Length)]);
            if (random.Next(8) == 0) bytes.RemoveAt(bytes.Count - 1); // partial UTF-8 across tokens
            if (bytes.Count > 0 && seen.Add(Convert.ToHexString([.. bytes]))) tokens.Add([.. bytes]);
        }
        return tokens;
    }

    private static byte[] Sample(ITokenConstraint constraint, TokenVocabulary vocabulary, int seed, int maxSteps)
    {
        var sampler = new Sampler(new GenerationOptions { Temperature = 1, Seed = seed, Constraint = constraint }, vocabulary.Count);
        var random = new Random(seed * 17 + 3);
        var logits = new float[vocabulary.Count];
        var bytes = new List<byte>();
        for (int step = 0; step < maxSteps && !constraint.IsComplete; step++)
        {
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(random.NextDouble() * 6 - 3);
            int token = sampler.Sample(logits, out _, default);
            bytes.AddRange(vocabulary.GetBytes(token).ToArray());
        }
        return [.. bytes];
    }
}
