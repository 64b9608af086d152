using System.Text.Json.Nodes;
using KimiSharp.Cli;

namespace KimiSharp.Cli.Tests;

/// <summary>
/// <c>kimi chat-template</c> against the Jinja2 renderings committed as fixtures (rendered with Python Jinja2 by
/// tests/KimiSharp.Tokens.Tests/Templates/Fixtures/render_with_jinja2.py).
/// </summary>
public sealed class ChatTemplateCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-template-cli-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static string Fixtures => Path.Combine(LogitsCommandTests.RepositoryRoot, "tests", "KimiSharp.Tokens.Tests", "Templates", "Fixtures");

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string template in new[] { "Kimi-K2-Thinking", "Kimi-K2-Instruct" })
            foreach (string file in Directory.GetFiles(Path.Combine(Fixtures, "conversations"), "*.json").Order())
                if (File.Exists(Path.Combine(Fixtures, "expected", template, Path.GetFileNameWithoutExtension(file) + ".txt")))
                    data.Add(template, Path.GetFileNameWithoutExtension(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Output_is_byte_identical_to_jinja2(string template, string conversation)
    {
        var fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures, "conversations", conversation + ".json")))!.AsObject();
        string messages = Path.Combine(_scratch, "messages.json");
        File.WriteAllText(messages, fixture["messages"]!.ToJsonString());
        var args = new List<string> { "chat-template", "--messages", messages, "--template", Path.Combine(Fixtures, "templates", template + ".jinja") };
        if (fixture["tools"] is JsonNode tools)
        {
            string path = Path.Combine(_scratch, "tools.json");
            File.WriteAllText(path, tools.ToJsonString());
            args.AddRange(["--tools", path]);
        }
        if (fixture["add_generation_prompt"]?.GetValue<bool>() == false) args.Add("--no-generation-prompt");
        if (fixture["variables"] is JsonObject variables)
            foreach (var (name, value) in variables) args.AddRange(["--var", $"{name}={value?.ToJsonString() ?? "null"}"]);

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await CliApp.RunAsync([.. args], stdout, stderr);
        string expected = File.ReadAllText(Path.Combine(Fixtures, "expected", template, conversation + ".txt"));
        Assert.True(code == 0, stderr.ToString());
        Assert.Equal(expected, stdout.ToString());
    }

    [Fact]
    public async Task Missing_or_malformed_files_are_clear_errors()
    {
        var stderr = new StringWriter();
        int code = await CliApp.RunAsync(["chat-template", "--messages", Path.Combine(_scratch, "none.json")], new StringWriter(), stderr);
        Assert.Equal(2, code);
        Assert.Contains("no such file", stderr.ToString());
        string bad = Path.Combine(_scratch, "bad.json");
        File.WriteAllText(bad, "[{\"role\": ");
        stderr = new StringWriter();
        code = await CliApp.RunAsync(["chat-template", "--messages", bad], new StringWriter(), stderr);
        Assert.Equal(2, code);
        Assert.Contains("not valid JSON", stderr.ToString());
    }
}
