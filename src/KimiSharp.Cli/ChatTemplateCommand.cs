using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Cli;

/// <summary><c>kimi chat-template</c>: prints the prompt a template renders (like llama.cpp's /apply-template).</summary>
internal static class ChatTemplateCommand
{
    public static Command Create()
    {
        var messages = CliOptions.Required("--messages", "FILE.json", "The conversation: a JSON array of messages");
        var tools = CliOptions.Text("--tools", "FILE.json", "Tools offered: a JSON array of tool definitions");
        var template = CliOptions.Text("--template", "FILE.jinja", "The template to render [default: the model's, else the built-in Kimi K2 Thinking template]");
        var model = CliOptions.Text("--model", "DIR", "Use the template of this model folder");
        var variables = new Option<string[]>("--var")
        {
            Description = "A template variable, name=json (a bare word is a string); repeatable", HelpName = "NAME=JSON",
            Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
        };
        var noGenerationPrompt = CliOptions.Flag("--no-generation-prompt", "Do not open an assistant turn at the end");
        var command = new Command("chat-template", "Print the prompt a chat template renders for a conversation.")
        {
            messages, tools, template, model, variables, noGenerationPrompt,
        };
        command.Exclusive(template, model, "give --template or --model, not both");
        command.SetAction(r => Run(r.GetValue(messages)!, r.GetValue(tools), r.GetValue(template), r.GetValue(model),
            r.GetValue(variables) ?? [], !r.GetValue(noGenerationPrompt), r.Out()));
        return command;
    }

    public static int Run(string messagesPath, string? toolsPath, string? templatePath, string? modelDir, IReadOnlyList<string> assignments,
        bool addGenerationPrompt, TextWriter stdout)
    {
        var messages = ReadJson(messagesPath, "--messages") as JsonArray
            ?? throw new UsageException("--messages must hold a JSON array of messages");
        JsonArray? tools = null;
        if (toolsPath is not null)
            tools = ReadJson(toolsPath, "--tools") as JsonArray ?? throw new UsageException("--tools must hold a JSON array of tools");
        var variables = new Dictionary<string, JsonNode?>();
        foreach (string assignment in assignments)
        {
            int eq = assignment.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--var '{assignment}' must look like name=json");
            string value = assignment[(eq + 1)..];
            try { variables[assignment[..eq]] = JsonNode.Parse(value); }
            catch (JsonException) { variables[assignment[..eq]] = JsonValue.Create(value); } // a bare word is a string
        }
        var template = templatePath is not null ? ChatTemplate.FromFile(templatePath)
            : modelDir is not null ? ChatTemplate.FromModelDirectory(modelDir)
            : ChatTemplate.BuiltInKimiK2Thinking();
        stdout.Write(template.Render(messages, tools, addGenerationPrompt, variables.Count > 0 ? variables : null));
        return 0;
    }

    private static JsonNode? ReadJson(string path, string option)
    {
        if (!File.Exists(path)) throw new UsageException($"{option}: no such file '{path}'");
        try { return JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new UsageException($"{option}: '{path}' is not valid JSON ({e.Message})"); }
    }
}
