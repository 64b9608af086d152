using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Cli;

/// <summary><c>kimi chat-template</c>: prints the prompt a template renders (like llama.cpp's /apply-template).</summary>
internal static class ChatTemplateCommand
{
    public static int Run(CommandLine options, TextWriter stdout, TextWriter stderr)
    {
        options.AllowOnly("messages", "tools", "template", "model", "var", "no-generation-prompt");
        if (options.Has("template") && options.Has("model")) throw new UsageException("give --template or --model, not both");
        var messages = ReadJson(options.Require("messages"), "--messages") as JsonArray
            ?? throw new UsageException("--messages must hold a JSON array of messages");
        JsonArray? tools = null;
        if (options.Get("tools") is { } toolsPath)
            tools = ReadJson(toolsPath, "--tools") as JsonArray ?? throw new UsageException("--tools must hold a JSON array of tools");
        var variables = new Dictionary<string, JsonNode?>();
        foreach (string assignment in options.GetAll("var"))
        {
            int eq = assignment.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--var '{assignment}' must look like name=json");
            string value = assignment[(eq + 1)..];
            try { variables[assignment[..eq]] = JsonNode.Parse(value); }
            catch (JsonException) { variables[assignment[..eq]] = JsonValue.Create(value); } // a bare word is a string
        }
        var template = options.Get("template") is { } file ? ChatTemplate.FromFile(file)
            : options.Get("model") is { } dir ? ChatTemplate.FromModelDirectory(dir)
            : ChatTemplate.BuiltInKimiK2Thinking();
        stdout.Write(template.Render(messages, tools, !options.Has("no-generation-prompt"), variables.Count > 0 ? variables : null));
        return 0;
    }

    private static JsonNode? ReadJson(string path, string option)
    {
        if (!File.Exists(path)) throw new UsageException($"{option}: no such file '{path}'");
        try { return JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new UsageException($"{option}: '{path}' is not valid JSON ({e.Message})"); }
    }
}
