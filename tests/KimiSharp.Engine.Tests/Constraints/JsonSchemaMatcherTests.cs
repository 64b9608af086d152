using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Engine.Constraints;

namespace KimiSharp.Engine.Tests.Constraints;

public sealed class JsonSchemaMatcherTests
{
    private static JsonSchemaMatcher M(string schema, JsonSchemaOptions? options = null) => JsonSchemaMatcher.Compile(schema, options);

    private static void Accepts(JsonSchemaMatcher m, params string[] documents)
    {
        foreach (var d in documents) Assert.True(m.Matches(d), $"should accept: {d}");
    }

    private static void Rejects(JsonSchemaMatcher m, params string[] documents)
    {
        foreach (var d in documents) Assert.False(m.Matches(d), $"should reject: {d}");
    }

    private static void RejectsBytes(JsonSchemaMatcher m, params byte[][] documents)
    {
        foreach (var d in documents) Assert.False(m.Matches(d), $"should reject: {Convert.ToHexString(d)}");
    }

    [Fact]
    public void Objects_follow_properties_required_and_schema_order()
    {
        var m = M("""{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["name"]}""");
        Accepts(m, """{"name":"a"}""", """{"name":"a","age":3}""", """{"name": "a", "age": 3}""", """{"name":"a","tags":[]}""",
            """{"name":"a","age":-1,"tags":["x","y"]}""");
        Rejects(m, "{}", """{"age":3}""", """{"age":3,"name":"a"}""", """{"name":"a","x":1}""", """{"name":1}""",
            """{ "name":"a"}""", """{"name":"a"} """, """{"name":"a",}""", """{"name":"a"  ,"age":1}""", """{"name":  "a"}""",
            """{"name":"a","name":"b"}""", """{"name":"a","age":3,"age":4}""", "[]", "null");
    }

    [Fact]
    public void Required_keys_without_properties_and_closed_objects()
    {
        Accepts(M("""{"type":"object","additionalProperties":false}"""), "{}");
        Rejects(M("""{"type":"object","additionalProperties":false}"""), """{"a":1}""");
        var m = M("""{"type":"object","required":["id"],"additionalProperties":{"type":"integer"}}""");
        Accepts(m, """{"id":5}""");
        Rejects(m, "{}", """{"id":"x"}""");
        Assert.Throws<ArgumentException>(() => M("""{"type":"object","required":["id"],"additionalProperties":false}"""));
        var odd = M("""{"type":"object","properties":{"naïve":{"type":"null"},"a\"b":{"type":"null"}}}""");
        Accepts(odd, """{"naïve":null}""", """{"a\"b":null}""", """{"naïve":null,"a\"b":null}""");
        Rejects(odd, """{"a\u0022b":null}""", """{"a"b":null}""");
    }

    [Fact]
    public void Free_form_objects_take_any_distinct_keys()
    {
        var m = M("""{"type":"object"}""");
        Accepts(m, "{}", """{"a":1,"b":[true,null,{"c":"d"}],"":{}}""", """{"a\"b":1,"a":2}""");
        Rejects(m, """{"a":1,"a":2}""", """{"a":1,"b":2,"a":3}""", """{a:1}""", "[]");
        var ints = M("""{"type":"object","additionalProperties":{"type":"integer"}}""");
        Accepts(ints, """{"x":1,"y":-2}""");
        Rejects(ints, """{"x":"s"}""", """{"x":1.5}""");
        var counted = M("""{"type":"object","minProperties":1,"maxProperties":2}""");
        Accepts(counted, """{"a":1}""", """{"a":1,"b":[]}""");
        Rejects(counted, "{}", """{"a":1,"b":2,"c":3}""");
        Assert.Throws<ArgumentException>(() => M("""{"type":"object","minProperties":1,"additionalProperties":false}"""));
        Assert.Throws<ArgumentException>(() => M("""{"type":"object","minProperties":3,"maxProperties":2}"""));
        Accepts(M("""{"type":"object","maxProperties":0}"""), "{}");
        Rejects(M("""{"type":"object","maxProperties":0}"""), """{"a":1}""");
        var anyObject = JsonSchemaMatcher.AnyObject();
        Accepts(anyObject, "{}", """{"k":[1,{"z":null}]}""");
        Rejects(anyObject, "[]", "1", "\"s\"");
    }

    [Fact]
    public void Arrays_respect_items_and_bounds()
    {
        var m = M("""{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3}""");
        Accepts(m, "[1]", "[1,2,3]", "[1, 2]");
        Rejects(m, "[]", "[1,2,3,4]", """[1,"a"]""", "[1,]", "[ 1]", "[1 ]", "[,1]");
        var tuple = M("""{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}""");
        Accepts(tuple, "[]", """["a"]""", """["a",1]""");
        Rejects(tuple, "[1]", """["a",1,2]""");
        var old = M("""{"type":"array","items":[{"type":"boolean"}],"additionalItems":{"type":"null"}}""");
        Accepts(old, "[true]", "[false,null,null]");
        Rejects(old, "[null]", "[true,true]");
    }

    [Fact]
    public void Strings_are_valid_utf8_with_escapes_and_length_bounds_in_code_points()
    {
        var m = M("""{"type":"string","minLength":2,"maxLength":4}""");
        Accepts(m, "\"ab\"", "\"abcd\"", "\"é€\"", "\"\\u00e9x\"", "\"\\ud83d\\ude00x\"", "\"😀😀😀😀\"", "\"\\n\\t\\\"\\\\\"", "\"a\\/\"");
        Rejects(m, "\"a\"", "\"abcde\"", "\"😀\"", "\"\\ud83dx\"", "\"\\ude00x\"", "\"\\x1\"", "\"a\\u12\"", "\"ab", "ab");
        RejectsBytes(m,
            [(byte)'"', (byte)'a', 0x01, (byte)'"'],
            [(byte)'"', (byte)'a', 0xC0, 0x80, (byte)'"'],
            [(byte)'"', (byte)'a', 0xED, 0xA0, 0x80, (byte)'"'],
            [(byte)'"', (byte)'a', 0xE2, 0x82, (byte)'"'],
            [(byte)'"', (byte)'a', 0xF5, 0x80, 0x80, 0x80, (byte)'"']);
        Assert.Empty(M("""{"type":"string","pattern":"^a"}""").IgnoredKeywords); // enforced now (PatternConstraintTests)
    }

    [Fact]
    public void Numbers_follow_the_json_grammar_with_bounded_digits()
    {
        var m = M("""{"type":"number"}""");
        Accepts(m, "0", "-0", "1.5", "-1.5e10", "1E+2", "123", "0.000001", "123456789012345");
        Rejects(m, "01", "1.", ".5", "+1", "1e", "--1", "1234567890123456", "1e123", "0x1", "NaN", "1 ");
        var i = M("""{"type":"integer"}""");
        Accepts(i, "42", "-7", "0");
        Rejects(i, "4.2", "1e3", "-", "1.0");
    }

    [Fact]
    public void Integer_bounds_are_enforced_digit_by_digit()
    {
        var m = M("""{"type":"integer","minimum":1,"maximum":100}""");
        Accepts(m, "1", "100", "57");
        Rejects(m, "0", "101", "-1", "1000");
        var state = m.Start;
        Assert.False(m.TryAdvance(ref state, "-"u8));
        Assert.False(m.TryAdvance(ref state, "0"u8));
        Assert.True(m.TryAdvance(ref state, "10"u8));
        Assert.True(m.IsAccepting(state));
        Assert.True(m.CanContinue(state));
        Assert.False(m.TryAdvance(ref state, "1"u8));
        var negative = M("""{"type":"integer","exclusiveMinimum":-20,"exclusiveMaximum":-9}""");
        Accepts(negative, "-10", "-19");
        Rejects(negative, "-20", "-9", "5", "-1");
        var prefix = negative.Start;
        Assert.True(negative.TryAdvance(ref prefix, "-1"u8));
        Assert.False(negative.IsAccepting(prefix));
    }

    [Fact]
    public void Number_bounds_are_enforced_exactly_without_exponents()
    {
        var unit = M("""{"type":"number","minimum":0,"maximum":1}""");
        Accepts(unit, "0", "1", "0.5", "1.0", "1.000", "0.999999", "-0", "-0.0");
        Rejects(unit, "1.5", "-0.1", "2", "1e0", "1.01", "10");
        var state = unit.Start;
        Assert.True(unit.TryAdvance(ref state, "1."u8));
        Assert.False(unit.IsAccepting(state));
        var probe = state;
        Assert.False(unit.TryAdvance(ref probe, "1"u8));
        Assert.True(unit.TryAdvance(ref state, "0"u8));
        Assert.True(unit.IsAccepting(state));

        var open = M("""{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}""");
        Accepts(open, "0.5", "0.000001", "0.999");
        Rejects(open, "0", "1", "0.0", "1.0");
        state = open.Start;
        Assert.True(open.TryAdvance(ref state, "0."u8));
        Assert.False(open.TryAdvance(ref state, "a"u8));
        state = open.Start;
        Assert.False(open.TryAdvance(ref state, "1"u8));
        Assert.False(open.TryAdvance(ref state, "-"u8));

        var negative = M("""{"type":"number","minimum":-2.5,"maximum":-1.25}""");
        Accepts(negative, "-2.5", "-1.25", "-2", "-1.3", "-2.4999");
        Rejects(negative, "-1.2", "-2.6", "0", "1", "-1.251e0", "-3");
        Accepts(M("""{"type":"number","minimum":-90,"maximum":90}"""), "45.123", "-90", "90", "0");
        Rejects(M("""{"type":"number","minimum":-90,"maximum":90}"""), "90.5", "100", "-90.0001");
        var draft4 = M("""{"type":"integer","minimum":0,"exclusiveMinimum":true,"maximum":3,"exclusiveMaximum":true}""");
        Accepts(draft4, "1", "2");
        Rejects(draft4, "0", "3");
        Assert.Throws<ArgumentException>(() => M("""{"type":"number","exclusiveMinimum":1,"exclusiveMaximum":1}"""));
        var tiny = M("""{"type":"number","minimum":0.0000000001,"maximum":0.0000000002}""");
        Accepts(tiny, "0.0000000001", "0.00000000015");
        Rejects(tiny, "0", "0.0000000003");
    }

    [Fact]
    public void Booleans_null_enum_and_const()
    {
        Accepts(M("""{"type":"boolean"}"""), "true", "false");
        Rejects(M("""{"type":"boolean"}"""), "null", "tru", "\"true\"");
        Accepts(M("""{"type":"null"}"""), "null");
        var e = M("""{"enum":["red","green",1,12,null,{"a":[1,2]}]}""");
        Accepts(e, "\"red\"", "\"green\"", "1", "12", "null", """{"a":[1,2]}""");
        Rejects(e, "\"blue\"", "\"re\"", "2", "123", """{"a":[1]}""");
        Accepts(M("""{"const":"x"}"""), "\"x\"");
        Rejects(M("""{"const":"x"}"""), "\"y\"");
        var typed = M("""{"type":"string","enum":["a",1]}""");
        Accepts(typed, "\"a\"");
        Rejects(typed, "1");
    }

    [Fact]
    public void AnyOf_explores_alternatives_in_parallel()
    {
        var m = M("""{"anyOf":[{"type":"string"},{"type":"integer"},{"type":"array","items":{"type":"string"}}]}""");
        Accepts(m, "\"s\"", "5", "[\"a\"]");
        Rejects(m, "true", "[1]");
        var tagged = M("""
        {"oneOf":[
          {"type":"object","properties":{"kind":{"const":"a"},"x":{"type":"integer"}},"required":["kind","x"]},
          {"type":"object","properties":{"kind":{"const":"b"},"y":{"type":"string"}},"required":["kind","y"]}]}
        """);
        Accepts(tagged, """{"kind":"a","x":1}""", """{"kind":"b","y":"s"}""");
        Rejects(tagged, """{"kind":"a","y":"s"}""", """{"kind":"c","x":1}""");
        // Ambiguous alternatives converge and merge instead of multiplying.
        var ambiguous = M("""{"type":"array","items":{"anyOf":[{"type":"string"},{"type":"string","maxLength":100}]}}""");
        var state = ambiguous.Start;
        Assert.True(ambiguous.TryAdvance(ref state, Encoding.UTF8.GetBytes("[" + string.Join(",", Enumerable.Repeat("\"ab\"", 40)))));
        Assert.True(state.ThreadCount <= 2);
        // Sibling keywords apply to each alternative.
        var merged = M("""{"type":"object","properties":{"a":{"type":"integer"}},"anyOf":[{"required":["a"]},{"properties":{"b":{"type":"null"}},"required":["b"]}]}""");
        Accepts(merged, """{"a":1}""", """{"a":1,"b":null}""", """{"b":null}""");
        Rejects(merged, "{}");
    }

    [Fact]
    public void Refs_to_defs_and_definitions_including_recursion()
    {
        var tree = M("""
        {"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},
         "$ref":"#/$defs/node"}
        """);
        Accepts(tree, """{"v":1,"children":[{"v":2},{"v":3,"children":[]}]}""");
        Rejects(tree, """{"v":1,"children":[{}]}""");
        var old = M("""{"type":"object","properties":{"p":{"$ref":"#/definitions/point"}},"required":["p"],"definitions":{"point":{"type":"array","items":{"type":"number"},"minItems":2,"maxItems":2}}}""");
        Accepts(old, """{"p":[1,2.5]}""");
        Rejects(old, """{"p":[1]}""");
        var allOf = M("""{"allOf":[{"$ref":"#/$defs/base"},{"properties":{"extra":{"type":"boolean"}}}],"$defs":{"base":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}}}""");
        Accepts(allOf, """{"id":1}""", """{"id":1,"extra":true}""");
        Rejects(allOf, """{"extra":true}""");
    }

    [Fact]
    public void Type_arrays_nullable_and_any()
    {
        var m = M("""{"type":["string","null"],"maxLength":2}""");
        Accepts(m, "null", "\"ab\"");
        Rejects(m, "\"abc\"", "1");
        Accepts(M("""{"type":"integer","nullable":true}"""), "null", "3");
        foreach (var any in new[] { JsonSchemaMatcher.Compile((JsonNode?)null), M("true"), M("{}"), M("""{"description":"anything"}""") })
        {
            Accepts(any, "1", "\"x\"", "[]", """{"a":{}}""", "null", "-2.5e-3", """[{"a":[[]]},"\u00e9"]""");
            Rejects(any, "", "{", "[1,]", "nul", "\"\\q\"");
        }
    }

    [Fact]
    public void Accepting_and_continuing_states()
    {
        var any = M("true");
        var state = any.Start;
        Assert.False(any.IsAccepting(state));
        Assert.True(any.CanContinue(state));
        Assert.True(any.TryAdvance(ref state, "12"u8));
        Assert.True(any.IsAccepting(state));
        Assert.True(any.CanContinue(state));
        state = any.Start;
        Assert.True(any.TryAdvance(ref state, "{\"a\":1}"u8));
        Assert.True(any.IsAccepting(state));
        Assert.False(any.CanContinue(state));
        var before = state;
        Assert.False(any.TryAdvance(ref state, "x"u8));
        Assert.Equal(before, state);
        Assert.True(default(MatcherState).IsDead);
    }

    [Fact]
    public void Depth_is_bounded_and_only_completable_containers_open()
    {
        var m = M("true", new JsonSchemaOptions { MaxDepth = 3 });
        Accepts(m, "[[[1]]]", """{"a":{"b":[]}}""");
        Rejects(m, "[[[[1]]]]", """{"a":{"b":[{}]}}""");
        // A recursive schema stops offering optional recursion at the limit, but required nesting must fit.
        var list = M("""{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}""", new JsonSchemaOptions { MaxDepth = 2 });
        Accepts(list, "{}", """{"next":{}}""");
        var state = list.Start;
        Assert.True(list.TryAdvance(ref state, """{"next":{"""u8));
        Assert.False(list.TryAdvance(ref state, "\""u8)); // no key fits: only '}'
    }

    [Fact]
    public void Unsatisfiable_schemas_are_refused_and_unsatisfiable_options_skipped()
    {
        Assert.Throws<ArgumentException>(() => M("""{"enum":[]}"""));
        Assert.Throws<ArgumentException>(() => M("false"));
        Assert.Throws<ArgumentException>(() => M("""{"type":"string","minLength":5,"maxLength":2}"""));
        Assert.Throws<ArgumentException>(() => M("""{"type":"integer","minimum":5,"maximum":4}"""));
        Assert.Throws<ArgumentException>(() => M("""{"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}},"required":["c"]}},"$ref":"#/$defs/n"}"""));
        Assert.Throws<UnsupportedSchemaKeywordException>(() => M("""{"$ref":"https://example.com/s.json"}"""));
        var m = M("""{"type":"object","properties":{"a":{"enum":[]},"b":{"type":"integer"}}}""");
        Accepts(m, "{}", """{"b":1}""");
        var state = m.Start;
        Assert.False(m.TryAdvance(ref state, "{\"a"u8));
        var arrays = M("""{"type":"array","items":false}""");
        Accepts(arrays, "[]");
        Rejects(arrays, "[1]");
    }

    [Fact]
    public void Schemas_built_in_code_and_malformed_schemas()
    {
        var built = new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject { ["n"] = new JsonObject { ["type"] = "integer", ["maximum"] = 9 }, ["s"] = new JsonObject { ["type"] = "string", ["maxLength"] = 1 } },
            ["required"] = new JsonArray("n"),
        };
        var m = JsonSchemaMatcher.Compile(built);
        Accepts(m, """{"n":9}""", """{"n":0,"s":"x"}""");
        Rejects(m, """{"n":10}""", """{"n":1,"s":"xy"}""");
        Assert.Throws<ArgumentException>(() => M("""{"type":5}"""));
        Assert.Throws<ArgumentException>(() => M("""{"type":"strin"}"""));
        Assert.Throws<ArgumentException>(() => M("""{"$ref":"#/$defs/missing"}"""));
        Assert.Throws<ArgumentOutOfRangeException>(() => M("true", new JsonSchemaOptions { MaxDepth = 0 }));
    }

    [Fact]
    public void Random_byte_walks_only_ever_produce_valid_documents()
    {
        var schemas = FuzzSchemas.All;
        var random = new Random(7);
        var candidates = new List<byte>();
        foreach (var (name, schemaText) in schemas)
        {
            var schema = JsonNode.Parse(schemaText);
            var m = JsonSchemaMatcher.Compile(schema);
            int completed = 0;
            for (int run = 0; run < 60; run++)
            {
                var state = m.Start;
                var output = new List<byte>();
                for (int step = 0; step < 400; step++)
                {
                    if (m.IsAccepting(state) && (random.Next(4) == 0 || !m.CanContinue(state))) break;
                    candidates.Clear();
                    for (int b = 0; b < 256; b++)
                    {
                        var probe = state;
                        if (m.TryAdvance(ref probe, [(byte)b])) candidates.Add((byte)b);
                    }
                    Assert.True(candidates.Count > 0, $"{name}: dead end after {Encoding.UTF8.GetString([.. output])}");
                    // Prefer structural bytes so documents finish.
                    var structural = candidates.Where(c => "\"}],:".Contains((char)c)).ToList();
                    byte next = structural.Count > 0 && random.Next(3) == 0 ? structural[random.Next(structural.Count)] : candidates[random.Next(candidates.Count)];
                    Assert.True(m.TryAdvance(ref state, [next]));
                    output.Add(next);
                }
                if (!m.IsAccepting(state)) continue;
                completed++;
                MiniSchemaValidator.AssertValid(Encoding.UTF8.GetString([.. output]), schema);
            }
            Assert.True(completed > 0, $"{name}: no walk completed");
        }
    }
}
