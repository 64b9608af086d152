using System.Text.Json.Nodes;
using KimiSharp.Jinja;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Tokens.Tests.Templates;

public sealed class ChatTemplateApiTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kimisharp-chat-template-" + Guid.NewGuid().ToString("N"));

    public ChatTemplateApiTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonArray Messages(string json = """[{"role": "user", "content": "hi"}]""") => JsonNode.Parse(json)!.AsArray();

    private void Write(string name, string text) => File.WriteAllText(Path.Combine(_dir, name), text);

    [Fact]
    public void ModelDirectoryPrefersChatTemplateJinja()
    {
        Write("chat_template.jinja", "jinja:{{ messages[0].content }}");
        Write("tokenizer_config.json", """{"chat_template": "config"}""");
        var t = ChatTemplate.FromModelDirectory(_dir);
        Assert.Equal("jinja:hi", t.Render(Messages()));
        Assert.EndsWith("chat_template.jinja", t.Origin);
    }

    [Fact]
    public void ModelDirectoryReadsStringTemplateFromTokenizerConfig()
    {
        Write("tokenizer_config.json", """{"chat_template": "cfg:{{ messages | length }}", "bos_token": "[BOS]"}""");
        Assert.Equal("cfg:1", ChatTemplate.FromModelDirectory(_dir).Render(Messages()));
    }

    [Fact]
    public void ModelDirectoryPicksTheDefaultNamedTemplate()
    {
        Write("tokenizer_config.json", """
            {"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "default:{{ add_generation_prompt }}"}]}
            """);
        var t = ChatTemplate.FromModelDirectory(_dir);
        Assert.Equal("default:False", t.Render(Messages(), addGenerationPrompt: false));
        Assert.EndsWith("#chat_template[default]", t.Origin);
    }

    [Fact]
    public void TemplateListWithoutDefaultIsAnError()
    {
        Write("tokenizer_config.json", """{"chat_template": [{"name": "rag", "template": "x"}]}""");
        Assert.Throws<InvalidDataException>(() => ChatTemplate.FromModelDirectory(_dir));
    }

    [Fact]
    public void ModelDirectoryWithoutTemplateFallsBackToBuiltInK2Thinking()
    {
        Write("tokenizer_config.json", """{"bos_token": "[BOS]"}""");
        var t = ChatTemplate.FromModelDirectory(_dir);
        Assert.Equal("builtin:Kimi-K2-Thinking.jinja", t.Origin);
        Assert.True(t.SortsToolKeys);
        Assert.Equal(
            "<|im_system|>system<|im_middle|>You are Kimi, an AI assistant created by Moonshot AI.<|im_end|><|im_user|>user<|im_middle|>hi<|im_end|><|im_assistant|>assistant<|im_middle|>",
            t.Render(Messages()));
        Assert.Equal("builtin:Kimi-K2-Thinking.jinja", ChatTemplate.FromModelDirectory(Path.Combine(_dir, "..", Path.GetFileName(_dir))).Origin);
    }

    [Fact]
    public void MissingDirectoryThrows() =>
        Assert.Throws<DirectoryNotFoundException>(() => ChatTemplate.FromModelDirectory(Path.Combine(_dir, "nope")));

    [Fact]
    public void SpecialTokensComeFromTokenizerConfigUnlessOverridden()
    {
        Write("chat_template.jinja", "{{ bos_token }}|{{ eos_token }}|{{ unk_token is defined }}|{{ additional_special_tokens }}");
        Write("tokenizer_config.json", """
            {"bos_token": {"__type": "AddedToken", "content": "[BOS]", "special": true}, "eos_token": "[EOS]",
             "additional_special_tokens": ["<|im_end|>", {"content": "<|im_user|>"}]}
            """);
        Assert.Equal("[BOS]|[EOS]|False|['<|im_end|>', '<|im_user|>']", ChatTemplate.FromModelDirectory(_dir).Render(Messages()));
        var overridden = ChatTemplate.FromModelDirectory(_dir, new ChatTemplateOptions { EosToken = "<|im_end|>" });
        Assert.StartsWith("[BOS]|<|im_end|>|", overridden.Render(Messages()));
    }

    [Fact]
    public void VariablesMatchTransformers()
    {
        var t = new ChatTemplate("{{ tools is defined }}/{{ tools is none }}/{{ documents is none }}/{{ add_generation_prompt }}/{{ bos_token is defined }}/{{ thinking }}");
        Assert.Equal("True/True/True/True/False/False",
            t.Render(Messages(), extraVariables: new Dictionary<string, JsonNode?> { ["thinking"] = false }));
    }

    [Fact]
    public void ExtraVariablesOverrideSpecialTokensButNotRenderInputs()
    {
        var t = new ChatTemplate("{{ bos_token }}", new ChatTemplateOptions { BosToken = "[BOS]" });
        Assert.Equal("<s>", t.Render(Messages(), extraVariables: new Dictionary<string, JsonNode?> { ["bos_token"] = "<s>" }));
        Assert.Throws<ArgumentException>(() => t.Render(Messages(), extraVariables: new Dictionary<string, JsonNode?> { ["messages"] = new JsonArray() }));
    }

    [Fact]
    public void KimiTemplatesDeepSortToolKeysByDefault()
    {
        var tools = JsonNode.Parse("""[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}}}]""")!.AsArray();
        const string Sorted = """[{"function": {"name": "f", "parameters": {"properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "type": "object"}}, "type": "function"}]""";
        const string AsGiven = """[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}}}]""";

        var kimi = ChatTemplate.BuiltInKimiK2Thinking();
        Assert.True(kimi.SortsToolKeys);
        Assert.StartsWith("<|im_system|>tool_declare<|im_middle|>" + Sorted + "<|im_end|>", kimi.Render(Messages(), tools));

        var unsorted = ChatTemplate.BuiltInKimiK2Thinking(new ChatTemplateOptions { SortToolKeys = false });
        Assert.StartsWith("<|im_system|>tool_declare<|im_middle|>" + AsGiven + "<|im_end|>", unsorted.Render(Messages(), tools));

        var other = new ChatTemplate("{{ tools | tojson }}");
        Assert.False(other.SortsToolKeys);
        Assert.Equal(AsGiven, other.Render(Messages(), tools));
        Assert.Equal(Sorted, new ChatTemplate("{{ tools | tojson }}", new ChatTemplateOptions { SortToolKeys = true }).Render(Messages(), tools));
    }

    [Fact]
    public void SortKeysRecursivelyUsesCodePointOrderAndCopies()
    {
        // Python orders "\uFFFD" before "😀" (U+1F600); ordinal UTF-16 comparison would not.
        var node = JsonNode.Parse("""{"😀": 1, "\uFFFD": {"b": [{"d": 1, "c": 2}], "a": null}, "A": true}""");
        var sorted = ChatTemplate.SortKeysRecursively(node)!.AsObject();
        Assert.Equal(["A", "\uFFFD", "😀"], sorted.Select(p => p.Key));
        Assert.Equal(["a", "b"], sorted["\uFFFD"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["c", "d"], sorted["\uFFFD"]!["b"]![0]!.AsObject().Select(p => p.Key));
        Assert.Equal(["😀", "\uFFFD", "A"], node!.AsObject().Select(p => p.Key)); // input untouched
    }

    [Fact]
    public void FromFileParsesOnceAndRendersRepeatedly()
    {
        Write("t.jinja", "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}");
        var t = ChatTemplate.FromFile(Path.Combine(_dir, "t.jinja"));
        Assert.Equal("user:hi;", t.Render(Messages()));
        Assert.Equal("user:a;assistant:b;", t.Render(Messages("""[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]""")));
    }

    [Fact]
    public void SyntaxErrorsInModelTemplatesNameTheFile()
    {
        Write("chat_template.jinja", "{% if messages %}\nunterminated");
        var ex = Assert.Throws<TemplateException>(() => ChatTemplate.FromModelDirectory(_dir));
        Assert.Contains("chat_template.jinja", ex.Message);
        Assert.Equal(2, ex.Line);
    }
}
