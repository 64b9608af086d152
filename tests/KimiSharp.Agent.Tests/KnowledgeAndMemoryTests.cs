using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent.Tests;

public class KnowledgeBaseTests
{
    [Fact]
    public void GenerateIsDeterministicAndRoundTrips()
    {
        KnowledgeBase a = KnowledgeBase.Generate();
        KnowledgeBase b = KnowledgeBase.Generate();
        string json = a.ToJson();
        Assert.Equal(json, b.ToJson());
        Assert.Equal(json, KnowledgeBase.FromJson(json).ToJson());
        Assert.Equal(600, a.Entities.Count);
        Assert.NotEqual(json, KnowledgeBase.Generate(seed: 7).ToJson());
        Assert.Equal(json, KnowledgeBase.Default.ToJson());
        Assert.Equal(25, KnowledgeBase.Generate(cities: 25).Entities.Count);
    }

    [Fact]
    public void JsonShape()
    {
        JsonArray array = JsonNode.Parse(KnowledgeBase.Generate(cities: 3).ToJson())!.AsArray();
        Assert.Equal(3, array.Count);
        var names = array[0]!.AsObject().Select(p => p.Key).ToArray();
        Assert.Equal(new[] { "name", "population", "elevation", "founded", "area", "country", "river" }, names);
    }

    [Fact]
    public void NamesAreUniqueAndWellFormed()
    {
        KnowledgeBase kb = KnowledgeBase.Generate();
        Assert.Equal(kb.Entities.Count, kb.Entities.Select(e => e.Name.ToLowerInvariant()).Distinct().Count());
        foreach (KnowledgeEntity e in kb.Entities)
        {
            Assert.InRange(e.Name.Length, 4, 10);
            Assert.True(char.IsUpper(e.Name[0]), e.Name);
            Assert.True(e.Name.Skip(1).All(char.IsLower), e.Name);
            Assert.Same(e, kb.Find(e.Name.ToUpperInvariant()));
        }
        Assert.Null(kb.Find("Nowhere-At-All"));
    }

    [Fact]
    public void AttributeRanges()
    {
        KnowledgeBase kb = KnowledgeBase.Generate();
        Assert.Equal(new[] { "population", "elevation", "founded", "area", "country", "river" }, KnowledgeBase.Attributes);
        foreach (KnowledgeEntity e in kb.Entities)
        {
            Assert.InRange(int.Parse(e.Attribute("population")), 100, 9999);
            Assert.InRange(int.Parse(e.Attribute("elevation")), 1, 2999);
            Assert.InRange(int.Parse(e.Attribute("founded")), 1100, 1999);
            string area = e.Attribute("area");
            Assert.Matches(@"^\d{1,2}\.\d$", area);
            Assert.InRange(decimal.Parse(area, System.Globalization.CultureInfo.InvariantCulture), 1.0m, 99.9m);
            Assert.False(string.IsNullOrEmpty(e.Attribute("country")));
            Assert.False(string.IsNullOrEmpty(e.Attribute("river")));
        }
        Assert.Equal(8, kb.Entities.Select(e => e.Country).Distinct().Count());
        Assert.Throws<ArgumentException>(() => kb.Entities[0].Attribute("mayor"));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{}")]
    [InlineData("[1]")]
    [InlineData("""[{"name":"Abba"}]""")]
    [InlineData("""[{"name":"Abba","population":"x","elevation":1,"founded":1200,"area":1.5,"country":"C","river":"R"}]""")]
    [InlineData("""[{"name":"Abba","population":1,"elevation":1,"founded":1200,"area":1.55,"country":"C","river":"R"}]""")]
    [InlineData("""[{"name":"Abba","population":1,"elevation":1,"founded":1200,"area":1.5,"country":"C","river":"R"},{"name":"ABBA","population":1,"elevation":1,"founded":1200,"area":1.5,"country":"C","river":"R"}]""")]
    public void FromJsonRejectsMalformed(string json) =>
        Assert.Throws<FormatException>(() => KnowledgeBase.FromJson(json));
}

public class LookupToolTests
{
    private static readonly KnowledgeBase Kb = KnowledgeBase.Generate(cities: 50);

    private static ToolResult Lookup(JsonNode? entity, JsonNode? attribute) =>
        new LookupTool(Kb).Invoke(new JsonObject { ["entity"] = entity, ["attribute"] = attribute });

    [Fact]
    public void LooksUpEveryAttribute()
    {
        KnowledgeEntity e = Kb.Entities[7];
        foreach (string attribute in KnowledgeBase.Attributes)
            Assert.Equal(ToolResult.Ok(e.Attribute(attribute)), Lookup(e.Name.ToLowerInvariant(), attribute));
        Assert.Equal(e.Population.ToString(System.Globalization.CultureInfo.InvariantCulture), Lookup(e.Name, "population").Content);
    }

    [Fact]
    public void Errors()
    {
        string name = Kb.Entities[0].Name;
        Assert.Equal("error: no entity named 'Atlantis'", Lookup("Atlantis", "population").Content);
        Assert.Equal("error: unknown attribute 'mayor' (known: population, elevation, founded, area, country, river)",
            Lookup(name, "mayor").Content);
        Assert.Equal("error: 'entity' must be a string", Lookup(null, "population").Content);
        Assert.Equal("error: 'entity' must be a string", Lookup(5, "population").Content);
        Assert.Equal("error: 'attribute' must be a string", Lookup(name, null).Content);
    }

    [Fact]
    public void DeclarationListsAttributes()
    {
        JsonNode attribute = new LookupTool(Kb).Declaration["function"]!["parameters"]!["properties"]!["attribute"]!;
        Assert.Equal("""["population","elevation","founded","area","country","river"]""", attribute["enum"]!.ToJsonString());
        Assert.Equal("Look up an attribute of a city.",
            new LookupTool(Kb).Declaration["function"]!["description"]!.GetValue<string>());
    }
}

public class MemoryToolTests
{
    private static JsonObject Write(string key, string value) => new() { ["action"] = "write", ["key"] = key, ["value"] = value };
    private static JsonObject Read(string key) => new() { ["action"] = "read", ["key"] = key };
    private static readonly JsonObject List = new() { ["action"] = "list" };

    [Fact]
    public void WriteReadList()
    {
        var m = new MemoryTool();
        Assert.Equal("(empty)", m.Invoke(List).Content);
        Assert.Equal("saved total", m.Invoke(Write("total", "508.5")).Content);
        Assert.Equal("saved city", m.Invoke(Write("city", "Varnholt")).Content);
        Assert.Equal("saved total", m.Invoke(Write("total", "600")).Content);
        Assert.Equal("600", m.Invoke(Read("total")).Content);
        Assert.Equal("total, city", m.Invoke(List).Content);
        Assert.Equal(ToolResult.Error("no note named 'x'"), m.Invoke(Read("x")));
        Assert.Equal("(empty)", new MemoryTool().Invoke(List).Content);
    }

    [Fact]
    public void PopHandsOutAListOneItemAtATime()
    {
        var m = new MemoryTool();
        JsonObject pop = new() { ["action"] = "pop", ["key"] = "todo" };
        Assert.Equal(ToolResult.Error("no note named 'todo'"), m.Invoke(pop));
        m.Invoke(Write("todo", "Belmark, Ostdor ,Varnholt"));
        Assert.Equal("Belmark (2 left)", m.Invoke(pop).Content);
        Assert.Equal("Ostdor ,Varnholt", m.Invoke(Read("todo")).Content);
        Assert.Equal("Ostdor (1 left)", m.Invoke(pop).Content);
        Assert.Equal("Varnholt (0 left)", m.Invoke(pop).Content);
        Assert.Equal(ToolResult.Ok("todo is empty"), m.Invoke(pop));
        Assert.Equal("", m.Invoke(Read("todo")).Content);
        // A note without commas is a one-item list.
        m.Invoke(Write("one", "Belmark"));
        Assert.Equal("Belmark (0 left)", m.Invoke(new JsonObject { ["action"] = "pop", ["key"] = "one" }).Content);
    }

    [Fact]
    public void Limits()
    {
        var m = new MemoryTool();
        for (int i = 0; i < 100; i++) Assert.False(m.Invoke(Write("k" + i, "v")).IsError);
        Assert.Equal("error: memory is full (100 notes)", m.Invoke(Write("k100", "v")).Content);
        Assert.Equal("saved k5", m.Invoke(Write("k5", "overwrite")).Content);
        Assert.Equal("error: key is longer than 64 characters", m.Invoke(Write(new string('k', 65), "v")).Content);
        Assert.Equal("error: key is longer than 64 characters", m.Invoke(Read(new string('k', 65))).Content);
        Assert.Equal("error: value is longer than 2000 characters", m.Invoke(Write("k1", new string('v', 2001))).Content);
        Assert.Equal("saved k1", m.Invoke(Write("k1", new string('v', 2000))).Content);
        Assert.Equal("saved " + new string('k', 64), new MemoryTool().Invoke(Write(new string('k', 64), "v")).Content);
    }

    [Fact]
    public void ArgumentErrors()
    {
        var m = new MemoryTool();
        Assert.Equal("error: 'action' must be a string", m.Invoke([]).Content);
        Assert.Equal("error: unknown action 'erase' (known: write, read, list, pop)", m.Invoke(new JsonObject { ["action"] = "erase" }).Content);
        Assert.Equal("error: 'key' must be a string", m.Invoke(new JsonObject { ["action"] = "read" }).Content);
        Assert.Equal("error: 'value' must be a string", m.Invoke(new JsonObject { ["action"] = "write", ["key"] = "a", ["value"] = 3 }).Content);
    }
}
