using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent;

/// <summary>
/// The agent keeps its conversation in the OpenAI chat shape (<c>role</c>, <c>content</c>, <c>reasoning_content</c>,
/// <c>tool_calls</c>, <c>tool_call_id</c>, <c>name</c>) because that is what sessions store and every K2 server reads;
/// this converts it to Microsoft.Extensions.AI messages for whichever <see cref="IChatClient"/> runs the model.
/// </summary>
public static class AgentMessages
{
    /// <summary>Key of <see cref="FunctionCallContent.AdditionalProperties"/> with the arguments exactly as the model wrote them.</summary>
    public const string RawArgumentsKey = "raw_arguments";

    public static JsonObject User(string text) => new() { ["role"] = "user", ["content"] = text };

    public static JsonObject System(string text) => new() { ["role"] = "system", ["content"] = text };

    public static string Role(JsonNode? message) => message?["role"] is JsonValue v && v.TryGetValue(out string? role) ? role : "";

    public static string Text(JsonNode? node) => node switch
    {
        null => "",
        JsonValue v when v.TryGetValue(out string? s) => s,
        // OpenAI content parts: keep the text parts.
        JsonArray parts => string.Concat(parts.Select(p => p?["text"] is JsonValue t && t.TryGetValue(out string? s) ? s : "")),
        _ => node.ToJsonString(),
    };

    private static bool IsImagePart(JsonNode? part) => part?["type"] is JsonValue t && t.TryGetValue(out string? type) && type == "image_url";

    /// <summary>A content part as AI content: text, or an image_url part as DataContent (data: URLs) or UriContent.</summary>
    private static AIContent? PartContent(JsonNode? part)
    {
        if (!IsImagePart(part)) return part?["text"] is JsonValue t && t.TryGetValue(out string? text) ? new TextContent(text) : null;
        var image = part!["image_url"];
        string url = (image is JsonObject ? image["url"] : image) is JsonValue u && u.TryGetValue(out string? s) ? s
            : throw new ArgumentException("an image_url part has no url");
        return url.StartsWith("data:", StringComparison.OrdinalIgnoreCase) ? new DataContent(url) : new UriContent(url, "image/*");
    }

    /// <summary>Converts conversation messages to Microsoft.Extensions.AI messages, tool results named by their tool.</summary>
    public static List<ChatMessage> ToChatMessages(JsonArray messages)
    {
        var result = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i] as JsonObject ?? throw new ArgumentException($"message {i} is not a JSON object");
            string role = Role(message);
            switch (role)
            {
                case "tool":
                    string callId = message["tool_call_id"]?.GetValue<string>() ?? "";
                    result.Add(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(callId, Text(message["content"]))])
                    {
                        AuthorName = message["name"]?.GetValue<string>(),
                    });
                    break;
                case "assistant":
                    var contents = new List<AIContent>();
                    if (message["reasoning_content"] is JsonNode reasoning) contents.Add(new TextReasoningContent(Text(reasoning)));
                    string text = Text(message["content"]);
                    if (text.Length > 0 || message["tool_calls"] is not JsonArray) contents.Add(new TextContent(text));
                    if (message["tool_calls"] is JsonArray calls)
                        foreach (var call in calls)
                        {
                            string name = call?["function"]?["name"]?.GetValue<string>() ?? "";
                            string arguments = Text(call?["function"]?["arguments"]);
                            contents.Add(new FunctionCallContent(call?["id"]?.GetValue<string>() ?? "", name, ParseArguments(arguments))
                            {
                                AdditionalProperties = new() { [RawArgumentsKey] = arguments },
                            });
                        }
                    result.Add(new ChatMessage(ChatRole.Assistant, contents) { AuthorName = message["name"]?.GetValue<string>() });
                    break;
                case "system" or "user":
                    result.Add(message["content"] is JsonArray parts && parts.Any(IsImagePart)
                        ? new ChatMessage(new ChatRole(role), [.. parts.Select(PartContent).OfType<AIContent>()]) { AuthorName = message["name"]?.GetValue<string>() }
                        : new ChatMessage(new ChatRole(role), Text(message["content"])) { AuthorName = message["name"]?.GetValue<string>() });
                    break;
                default:
                    throw new ArgumentException($"message {i} has an unknown role '{role}' (expected system, user, assistant or tool)");
            }
        }
        return result;
    }

    /// <summary>The arguments of a call as text: what the model wrote when the client kept it, else the parsed arguments serialized.</summary>
    private static readonly JsonSerializerOptions CompactJson = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    public static string RawArguments(FunctionCallContent call) =>
        call.AdditionalProperties?.TryGetValue(RawArgumentsKey, out var raw) == true && raw is string text ? text
        : JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), CompactJson);

    private static Dictionary<string, object?>? ParseArguments(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return null;
            var arguments = new Dictionary<string, object?>();
            // A key written twice makes the call malformed, as unparseable JSON does: no value is silently chosen.
            foreach (var property in doc.RootElement.EnumerateObject())
                if (!arguments.TryAdd(property.Name, property.Value.Clone())) return null;
            return arguments;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Splits the conversation after its last user message into steps; see <see cref="ContextWindow.Split"/>.</summary>
    public static int ToolCallsInCurrentTask(JsonArray messages)
    {
        var (_, steps) = ContextWindow.Split(messages);
        int count = 0;
        foreach (var step in steps)
            foreach (var m in step)
                if (m["tool_calls"] is JsonArray a) count += a.Count;
        return count;
    }
}
