using System.Text.Json.Nodes;

namespace KimiSharp.Synthesis;

/// <summary>
/// Trajectories as standard OpenAI-format chat records, one JSON object a line: <c>messages</c> (user; assistant with
/// <c>reasoning_content</c>, <c>content</c> and <c>tool_calls</c> whose <c>arguments</c> are JSON strings; tool with
/// <c>tool_call_id</c>) and the <c>tools</c> declared to the model — the shape that common fine-tuning stacks read, so
/// the same accepted data can train a larger model elsewhere.
/// </summary>
public static class OpenAiChatExport
{
    /// <summary>One record: the whole conversation (not windowed) and the tool declarations; the inputs are not changed.</summary>
    public static JsonObject ToRecord(Trajectory trajectory, JsonArray tools)
    {
        ArgumentNullException.ThrowIfNull(trajectory);
        ArgumentNullException.ThrowIfNull(tools);
        var messages = new JsonArray();
        foreach (var node in trajectory.Messages)
        {
            var m = node as JsonObject ?? throw new ArgumentException("a trajectory message is not a JSON object", nameof(trajectory));
            string role = m["role"]?.GetValue<string>() ?? throw new ArgumentException("a trajectory message has no role", nameof(trajectory));
            var copy = new JsonObject { ["role"] = role };
            switch (role)
            {
                case "assistant":
                    if (m["reasoning_content"] is { } reasoning) copy["reasoning_content"] = reasoning.DeepClone();
                    copy["content"] = m["content"]?.DeepClone() ?? "";
                    if (m["tool_calls"] is JsonArray calls && calls.Count > 0) copy["tool_calls"] = calls.DeepClone();
                    break;
                case "tool":
                    copy["tool_call_id"] = m["tool_call_id"]?.DeepClone();
                    if (m["name"] is { } name) copy["name"] = name.DeepClone();
                    copy["content"] = m["content"]?.DeepClone();
                    break;
                default:
                    copy["content"] = m["content"]?.DeepClone();
                    break;
            }
            messages.Add(copy);
        }
        return new JsonObject { ["messages"] = messages, ["tools"] = tools.DeepClone() };
    }
}
