using System.Text.Json;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Coding;

/// <summary>A fresh folder under the temp directory, holding a workspace root and a sibling folder outside it.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = Directory.CreateTempSubdirectory("kimi-tools-").FullName;
        Root = System.IO.Path.Combine(Path, "ws");
        Outside = System.IO.Path.Combine(Path, "outside");
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Outside);
        Workspace = new Workspace(Root);
    }

    public string Path { get; }

    public string Root { get; }

    public string Outside { get; }

    public Workspace Workspace { get; }

    public string InRoot(string relative) => System.IO.Path.Combine(Root, relative);

    public string Write(string relative, string content)
    {
        string full = InRoot(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllText(full, content);
        return full;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class ToolCalls
{
    /// <summary>Calls a tool the way the dispatcher does (arguments as JSON elements) and returns its result.</summary>
    public static async Task<ToolResult> CallAsync(AIFunction tool, string argumentsJson, CancellationToken ct = default)
    {
        using JsonDocument document = JsonDocument.Parse(argumentsJson);
        var arguments = new AIFunctionArguments();
        foreach (JsonProperty property in document.RootElement.EnumerateObject()) arguments[property.Name] = property.Value.Clone();
        return await ((IToolResultFunction)tool).InvokeForResultAsync(arguments, ct);
    }

    public static AIFunction Named(this IReadOnlyList<AIFunction> tools, string name) => tools.Single(t => t.Name == name);
}
