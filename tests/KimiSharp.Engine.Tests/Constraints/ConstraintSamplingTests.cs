using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Constraints;
using Xunit.Abstractions;

namespace KimiSharp.Engine.Tests.Constraints;

internal static class FuzzSchemas
{
    public static readonly (string Name, string Schema)[] All =
    [
        ("nested object", """
            {"type":"object","properties":{
              "name":{"type":"string","maxLength":12},
              "age":{"type":"integer","minimum":0,"maximum":150},
              "address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":["string","null"]}},"required":["city"]},
              "score":{"type":"number","minimum":0,"maximum":1},
              "ratio":{"type":"number","exclusiveMinimum":-2.5,"maximum":-1.25},
              "raw":{"type":"number"}},
             "required":["name","address"]}
            """),
        ("array of enums", """{"type":"array","items":{"enum":["red","green","blue",7,null]},"minItems":1,"maxItems":4}"""),
        ("anyOf", """
            {"type":"object","properties":{"result":{"anyOf":[
              {"type":"object","properties":{"ok":{"const":true},"value":{"type":"integer"}},"required":["ok","value"]},
              {"type":"object","properties":{"ok":{"const":false},"error":{"type":"string","minLength":1,"maxLength":8}},"required":["ok","error"]},
              {"type":"null"}]}},"required":["result"]}
            """),
        ("integers and booleans", """
            {"type":"object","properties":{"n":{"type":"integer"},"flags":{"type":"array","items":{"type":"boolean"},"maxItems":3},"k":{"type":"integer","minimum":-5,"maximum":5}},"required":["n","k"],"additionalProperties":false}
            """),
        ("recursive", """
            {"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["v"]}},"$ref":"#/$defs/node"}
            """),
        ("string map", """{"type":"object","additionalProperties":{"type":"string","maxLength":5},"minProperties":1,"maxProperties":3}"""),
        ("bounded numbers", """{"type":"array","items":{"anyOf":[{"type":"number","minimum":-90,"maximum":90},{"type":"number","exclusiveMinimum":0.001,"exclusiveMaximum":0.002}]},"minItems":1,"maxItems":4}"""),
        ("ambiguous strings", """{"type":"object","properties":{"v":{"anyOf":[{"type":"string"},{"type":"string","maxLength":3},{"enum":["abc","ab\"d"]}]},"k":{"type":"object"}},"required":["v","k"]}"""),
        ("tuple", """{"type":"array","prefixItems":[{"type":"string","minLength":2,"maxLength":3},{"type":"number"},{"type":"boolean"}],"items":false,"minItems":3}"""),
    ];
}

/// <summary>Samples from random logits under constraints with a random vocabulary; the output must always be valid.</summary>
public sealed class ConstraintSamplingTests(ITestOutputHelper output)
{
    private const string JsonishCharacters = "{}[]\":,0123456789.-+eE tfrunlasxyz\\/_é€";

    /// <summary>All 256 single bytes, then random JSON-ish strings, then the named special tokens (no bytes).</summary>
    /// <summary>
    /// Samples under the constraint with random logits and, before every step, checks that the mask allows exactly
    /// the tokens whose bytes the matcher accepts from the current state (trie walk, fast paths and mask cache alike).
    /// </summary>
    internal static void AssertMaskEqualsMatcher(JsonSchemaMatcher matcher, List<byte[]?> tokens, int seeds, int steps)
    {
        var vocabulary = new TokenVocabulary(tokens);
        for (int seed = 0; seed < seeds; seed++)
        {
            var constraint = new JsonConstraint(matcher, vocabulary);
            var sampler = new Sampler(new GenerationOptions { Temperature = 1, Seed = seed, Constraint = constraint }, vocabulary.Count);
            var random = new Random(seed);
            var state = matcher.Start;
            var logits = new float[vocabulary.Count];
            for (int step = 0; step < steps && !constraint.IsComplete; step++)
            {
                for (int t = 0; t < tokens.Count; t++)
                {
                    var probe = state;
                    Assert.True(matcher.TryAdvance(ref probe, tokens[t]) == constraint.IsAllowed(t), $"token {t} after step {step}");
                }
                for (int i = 0; i < logits.Length; i++) logits[i] = (float)(random.NextDouble() * 6 - 3);
                int token = sampler.Sample(logits, out _, default);
                Assert.True(matcher.TryAdvance(ref state, tokens[token]));
            }
        }
    }

    internal static List<byte[]?> RandomVocabulary(int seed, int randomTokens, int specials)
    {
        var random = new Random(seed);
        var pieces = JsonishCharacters.Select(c => Encoding.UTF8.GetBytes(c.ToString())).ToArray();
        var tokens = new List<byte[]?>();
        for (int b = 0; b < 256; b++) tokens.Add([(byte)b]);
        var seen = new HashSet<string>();
        while (tokens.Count < 256 + randomTokens)
        {
            var bytes = new List<byte>();
            int length = random.Next(1, 5);
            for (int i = 0; i < length; i++) bytes.AddRange(pieces[random.Next(pieces.Length)]);
            if (random.Next(10) == 0) bytes.Add((byte)random.Next(0x80, 0x100)); // stray bytes: partial UTF-8 across tokens
            if (seen.Add(Convert.ToHexString([.. bytes])) || random.Next(20) == 0) tokens.Add([.. bytes]); // a few duplicates
        }
        for (int i = 0; i < specials; i++) tokens.Add(null);
        return tokens;
    }

    private sealed record Run(List<int> Tokens, byte[] Bytes, bool Complete);

    private static Run Generate(ITokenConstraint constraint, TokenVocabulary vocabulary, int seed, int maxSteps)
    {
        var sampler = new Sampler(new GenerationOptions { Temperature = 1, Seed = seed, Constraint = constraint }, vocabulary.Count);
        var random = new Random(seed * 31 + 1);
        var logits = new float[vocabulary.Count];
        var tokens = new List<int>();
        var bytes = new List<byte>();
        for (int step = 0; step < maxSteps && !constraint.IsComplete; step++)
        {
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(random.NextDouble() * 6 - 3);
            int token = sampler.Sample(logits, out _, default);
            tokens.Add(token);
            bytes.AddRange(vocabulary.GetBytes(token).ToArray());
        }
        return new Run(tokens, [.. bytes], constraint.IsComplete);
    }

    public static IEnumerable<object[]> SchemaNames() => FuzzSchemas.All.Select(s => new object[] { s.Name });

    [Theory]
    [MemberData(nameof(SchemaNames))]
    public void Sampled_json_always_parses_and_validates(string name)
    {
        var schema = JsonNode.Parse(FuzzSchemas.All.Single(s => s.Name == name).Schema);
        var tokens = RandomVocabulary(1, 2000, 2);
        var vocabulary = new TokenVocabulary(tokens);
        int eos = tokens.Count - 1;
        var matcher = JsonSchemaMatcher.Compile(schema);
        int completed = 0;
        for (int seed = 0; seed < 25; seed++)
        {
            var constraint = new JsonConstraint(matcher, vocabulary, eos);
            var run = Generate(constraint, vocabulary, seed, 600);
            if (!run.Complete) continue;
            completed++;
            Assert.Equal(eos, run.Tokens[^1]);
            Assert.DoesNotContain(eos - 1, run.Tokens); // the other special token never appears
            string json = Encoding.UTF8.GetString(run.Bytes);
            Assert.True(matcher.Matches(run.Bytes));
            MiniSchemaValidator.AssertValid(json, schema);
            if (seed < 3) output.WriteLine(json);
        }
        Assert.True(completed >= 5, $"only {completed}/25 runs finished");
    }

    [Theory]
    [MemberData(nameof(SchemaNames))]
    public void The_mask_equals_testing_every_token_on_its_own(string name)
    {
        // The trie walk, the string fast paths and the mask cache must allow exactly the tokens whose bytes the
        // matcher accepts from the current state.
        var matcher = JsonSchemaMatcher.Compile(FuzzSchemas.All.Single(s => s.Name == name).Schema);
        AssertMaskEqualsMatcher(matcher, RandomVocabulary(11, 1500, 0), seeds: 4, steps: 60);
    }

    [Fact]
    public void Json_object_mode_yields_objects_and_completes_without_end_tokens()
    {
        var tokens = RandomVocabulary(2, 2000, 0);
        var vocabulary = new TokenVocabulary(tokens);
        var matcher = JsonSchemaMatcher.AnyObject(new JsonSchemaOptions { MaxDepth = 6 });
        int completed = 0;
        for (int seed = 0; seed < 25; seed++)
        {
            var run = Generate(new JsonConstraint(matcher, vocabulary), vocabulary, seed, 600);
            if (!run.Complete) continue;
            completed++;
            using var doc = JsonDocument.Parse(run.Bytes);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
            AssertNoDuplicateKeys(doc.RootElement);
        }
        Assert.True(completed >= 5, $"only {completed}/25 runs finished");
    }

    private static void AssertNoDuplicateKeys(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Object)
        {
            var names = e.EnumerateObject().Select(p => p.Name).ToList();
            Assert.Equal(names.Count, names.Distinct().Count());
            foreach (var p in e.EnumerateObject()) AssertNoDuplicateKeys(p.Value);
        }
        else if (e.ValueKind == JsonValueKind.Array)
            foreach (var item in e.EnumerateArray()) AssertNoDuplicateKeys(item);
    }

    [Fact]
    public void Kimi_tool_call_sequence_with_two_functions()
    {
        var tokens = RandomVocabulary(3, 2000, 7);
        int first = tokens.Count - 7;
        var ids = new KimiToolCallTokens(first, first + 1, first + 2, first + 3, first + 4);
        int imEnd = first + 5, unrelated = first + 6;
        var vocabulary = new TokenVocabulary(tokens);
        var weatherSchema = JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["c","f"]}},"required":["city"]}""");
        var searchSchema = JsonNode.Parse("""{"type":"object","properties":{"query":{"type":"string","maxLength":10},"limit":{"type":"integer","minimum":1,"maximum":20}},"required":["query","limit"]}""");
        var functions = new[]
        {
            new ToolFunction("get_weather", JsonSchemaMatcher.Compile(weatherSchema)),
            new ToolFunction("get_weather_v2", JsonSchemaMatcher.Compile(searchSchema)), // shares a prefix with the first
        };
        var grammar = KimiToolCalls.Section(ids, functions, maxCalls: 2, imEnd);
        var calls = new Dictionary<string, int>();
        int completed = 0;
        for (int seed = 0; seed < 30; seed++)
        {
            var run = Generate(grammar.Build(vocabulary), vocabulary, seed, 800);
            if (!run.Complete) continue;
            completed++;
            Assert.DoesNotContain(unrelated, run.Tokens);
            // Split on the special tokens and check the structure.
            Assert.Equal(ids.SectionBegin, run.Tokens[0]);
            Assert.Equal(ids.CallBegin, run.Tokens[1]);
            Assert.Equal(new[] { ids.SectionEnd, imEnd }, run.Tokens.TakeLast(2));
            var segments = new List<(int Special, string Text)>();
            var text = new List<byte>();
            int special = -1;
            foreach (int t in run.Tokens)
            {
                if (t >= first)
                {
                    segments.Add((special, Encoding.UTF8.GetString([.. text])));
                    text.Clear();
                    special = t;
                }
                else text.AddRange(tokens[t]!);
            }
            int index = 0;
            for (int i = 0; i < segments.Count; i++)
            {
                if (segments[i].Special != ids.CallBegin) { Assert.Equal("", segments[i].Text); continue; }
                string header = segments[i].Text;
                Assert.Equal(ids.ArgumentBegin, segments[i + 1].Special);
                string arguments = segments[i + 1].Text;
                Assert.Equal(ids.CallEnd, segments[i + 2].Special);
                var match = System.Text.RegularExpressions.Regex.Match(header, @"^functions\.(get_weather|get_weather_v2):(\d+)$");
                Assert.True(match.Success, header);
                Assert.Equal(index++, int.Parse(match.Groups[2].Value));
                MiniSchemaValidator.AssertValid(arguments, match.Groups[1].Value == "get_weather" ? weatherSchema : searchSchema);
                calls[match.Groups[1].Value] = calls.GetValueOrDefault(match.Groups[1].Value) + 1;
                i += 2;
            }
            Assert.InRange(index, 1, 2);
        }
        Assert.True(completed >= 10, $"only {completed}/30 runs finished");
        Assert.Equal(2, calls.Count); // both functions were chosen at some point
    }

    [Fact]
    public void Sequence_masks_forced_tokens_then_literal_choice_then_json()
    {
        // 0 "a", 1 "b", 2 "{", 3 "}", 4 "ab", 5 "\"x\":", 6 "1", 7 and 8 special, 9 "a{" (crosses from the literal into the JSON).
        var tokens = new List<byte[]?> { "a"u8.ToArray(), "b"u8.ToArray(), "{"u8.ToArray(), "}"u8.ToArray(), "ab"u8.ToArray(), "\"x\":"u8.ToArray(), "1"u8.ToArray(), null, null, "a{"u8.ToArray() };
        var vocabulary = new TokenVocabulary(tokens);
        var grammar = Constraint.Sequence(
            Constraint.Tokens(7),
            Constraint.Choice(("a", Constraint.Json("""{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}""".AsNode())),
                              ("b", Constraint.Json("""{"type":"object","additionalProperties":false}""".AsNode()))),
            Constraint.AnyOfTokens(8));
        int[] Allowed(GrammarConstraint c) => Enumerable.Range(0, tokens.Count).Where(c.IsAllowed).ToArray();

        var c = grammar.Build(vocabulary);
        Assert.Equal([7], Allowed(c));
        c.Accept(7);
        Assert.Equal([0, 1, 9], Allowed(c));
        c.Accept(0);
        Assert.Equal([2], Allowed(c));
        c.Accept(2);
        Assert.Equal([5], Allowed(c));
        c.Accept(5);
        Assert.Equal([6], Allowed(c));
        c.Accept(6);
        Assert.Equal([3, 6], Allowed(c));
        c.Accept(3);
        Assert.False(c.IsAccepting);
        Assert.Equal([8], Allowed(c));
        var logits = new float[tokens.Count];
        c.Mask(logits);
        Assert.Equal(1, logits.Count(float.IsFinite));
        c.Accept(8);
        Assert.True(c.IsComplete);
        Assert.Throws<InvalidOperationException>(() => c.Accept(8));

        var other = grammar.Build(vocabulary);
        other.Accept(7);
        other.Accept(9); // "a{": branch "a", whose object requires "x"
        Assert.Equal([5], Allowed(other));
        other.Accept(5);
        other.Accept(6);
        other.Accept(3);
        other.Accept(8);
        Assert.True(other.IsComplete);
    }

    [Fact]
    public void Json_constraint_with_end_tokens_allows_them_only_once_the_value_is_complete()
    {
        var tokens = new List<byte[]?> { "1"u8.ToArray(), "2"u8.ToArray(), "["u8.ToArray(), "]"u8.ToArray(), null, null };
        var vocabulary = new TokenVocabulary(tokens);
        var c = new JsonConstraint(JsonSchemaMatcher.Compile("""{"type":"integer"}"""), vocabulary, 4, 5);
        Assert.False(c.IsAllowed(4));
        Assert.Equal(2, c.AllowedCount());
        c.Accept(1);
        Assert.True(c.IsAllowed(4) && c.IsAllowed(5) && c.IsAllowed(0));
        Assert.False(c.IsComplete);
        c.Accept(5);
        Assert.True(c.IsComplete);

        var noEnd = new JsonConstraint(JsonSchemaMatcher.Compile("""{"type":"array","maxItems":1}"""), vocabulary);
        noEnd.Accept(2);
        noEnd.Accept(3);
        Assert.True(noEnd.IsComplete);
    }

    /// <summary>Times Mask calls of the constraint it wraps.</summary>
    private sealed class Timed(ITokenConstraint inner) : ITokenConstraint
    {
        public Stopwatch MaskTime { get; } = new();
        public int Masks { get; private set; }
        public bool IsComplete => inner.IsComplete;
        public void Accept(int token) => inner.Accept(token);
        public void Mask(Span<float> logits)
        {
            MaskTime.Start();
            inner.Mask(logits);
            MaskTime.Stop();
            Masks++;
        }
    }

    [Fact]
    public void Masking_a_50k_vocabulary_completes()
    {
        var tokens = RandomVocabulary(5, 50_000, 1);
        var watch = Stopwatch.StartNew();
        var vocabulary = new TokenVocabulary(tokens);
        output.WriteLine($"vocabulary: {vocabulary.TrieNodeCount} trie nodes, built in {watch.ElapsedMilliseconds} ms");
        foreach (var (name, schema) in FuzzSchemas.All.Take(3).Append(("json_object", "")))
        {
            var matcher = schema == "" ? JsonSchemaMatcher.AnyObject() : JsonSchemaMatcher.Compile(schema);
            var constraint = new Timed(new JsonConstraint(matcher, vocabulary, tokens.Count - 1));
            var run = Generate(constraint, vocabulary, 1, 100);
            output.WriteLine($"{name}: {run.Tokens.Count} tokens, mask {constraint.MaskTime.Elapsed.TotalMilliseconds / constraint.Masks:F2} ms/token");
            Assert.NotEmpty(run.Tokens);
        }
    }
}

internal static class SchemaText
{
    public static JsonNode? AsNode(this string json) => JsonNode.Parse(json);
}
