using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// A per-episode scratchpad of notes under keys; each instance holds its own notes. A note may hold a to-do list
/// (items separated by commas) that <c>pop</c> hands out one item at a time, so a long run keeps its work queue in the
/// tool rather than copying the whole list into every step's reasoning.
/// </summary>
public sealed class MemoryTool : IAgentTool
{
    public const int MaxNotes = 100;
    public const int MaxKeyLength = 64;
    public const int MaxValueLength = 2000;

    /// <summary>The actions in declaration order.</summary>
    public static IReadOnlyList<string> Actions { get; } = ["write", "read", "list", "pop"];

    private readonly List<string> _order = [];
    private readonly Dictionary<string, string> _notes = new(StringComparer.Ordinal);

    public string Name => "memory";

    /// <summary>The keys in insertion order.</summary>
    public IReadOnlyList<string> Keys => _order;

    public JsonObject Declaration => ToolArgs.Declaration(Name,
        "Scratchpad: write, read or list notes; pop takes the next item of a list note.",
        new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["action"] = new JsonObject { ["type"] = "string", ["enum"] = ToolArgs.Strings(Actions) },
                ["key"] = new JsonObject { ["type"] = "string" },
                ["value"] = new JsonObject { ["type"] = "string" },
            },
            ["required"] = new JsonArray("action"),
        });

    public ToolResult Invoke(JsonObject arguments) => ToolArgs.Guard(() =>
    {
        if (!ToolArgs.TryGetString(arguments, "action", out string action)) return ToolResult.Error("'action' must be a string");
        if (!Actions.Contains(action))
            return ToolResult.Error($"unknown action '{ToolArgs.Clip(action)}' (known: {string.Join(", ", Actions)})");
        if (action == "list") return ToolResult.Ok(_order.Count == 0 ? "(empty)" : string.Join(", ", _order));

        if (!ToolArgs.TryGetString(arguments, "key", out string key)) return ToolResult.Error("'key' must be a string");
        if (key.Length == 0) return ToolResult.Error("'key' must not be empty");
        if (key.Length > MaxKeyLength) return ToolResult.Error($"key is longer than {MaxKeyLength} characters");

        if (action == "read")
            return _notes.TryGetValue(key, out string? note) ? ToolResult.Ok(note) : ToolResult.Error($"no note named '{key}'");
        if (action == "pop") return Pop(key);

        if (!ToolArgs.TryGetString(arguments, "value", out string value)) return ToolResult.Error("'value' must be a string");
        if (value.Length > MaxValueLength) return ToolResult.Error($"value is longer than {MaxValueLength} characters");
        if (!_notes.ContainsKey(key))
        {
            if (_order.Count >= MaxNotes) return ToolResult.Error($"memory is full ({MaxNotes} notes)");
            _order.Add(key);
        }
        _notes[key] = value;
        return ToolResult.Ok($"saved {key}");
    });

    private ToolResult Pop(string key)
    {
        if (!_notes.TryGetValue(key, out string? note)) return ToolResult.Error($"no note named '{key}'");
        int comma = note.IndexOf(',');
        string item = (comma < 0 ? note : note[..comma]).Trim();
        string rest = comma < 0 ? "" : note[(comma + 1)..].Trim();
        // An emptied list is a normal outcome, the signal that the work it queued is done.
        if (item.Length == 0 && rest.Length == 0) return ToolResult.Ok($"{key} is empty");
        _notes[key] = rest;
        int left = rest.Length == 0 ? 0 : rest.Split(',').Length;
        return ToolResult.Ok($"{item} ({left} left)");
    }
}
