using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace KimiSharp.Client;

/// <summary>
/// Chat-completion chunks (or one whole completion) → <see cref="ChatResponseUpdate"/>s. Reasoning and text pass
/// straight through; tool calls are gathered from their indexed fragments and emitted whole when the choice finishes;
/// usage is emitted once at the end, since some servers repeat it on every chunk.
/// </summary>
/// <param name="toolCallOffset">
/// How many tool calls the conversation already holds: a call the server sent without an id gets Kimi's own form,
/// <c>functions.NAME:IDX</c>, numbered on from there as K2 numbers them.
/// </param>
internal sealed class ChatStreamDecoder(int toolCallOffset)
{
    private sealed class PendingCall(int index)
    {
        public int Index { get; } = index;
        public string? Id { get; set; }
        public string? Name { get; set; }
        public StringBuilder Arguments { get; } = new();
    }

    private readonly SortedDictionary<int, PendingCall> _calls = [];
    private readonly string _fallbackId = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
    private string? _responseId;
    private string? _modelId;
    private DateTimeOffset? _created;
    private UsageDetails? _usage;
    private bool _finished;

    /// <summary>Whether the server said <c>[DONE]</c>.</summary>
    public bool Done { get; private set; }

    /// <summary>Whether the choice finished (a finish_reason came): the answer is whole even if <c>[DONE]</c> never does.</summary>
    public bool Finished => _finished;

    /// <summary>Decodes one SSE event's data into <paramref name="output"/>.</summary>
    public void DecodeChunk(string data, List<ChatResponseUpdate> output)
    {
        if (data.Trim() == "[DONE]")
        {
            Done = true;
            return;
        }
        using var doc = Parse(data, "its stream");
        Decode(doc.RootElement, "delta", output);
    }

    /// <summary>Decodes a whole (non-streamed) completion body: a server that ignored <c>stream: true</c>.</summary>
    public void DecodeCompletion(string body, List<ChatResponseUpdate> output)
    {
        using var doc = Parse(body, "its response");
        Decode(doc.RootElement, "message", output);
        Done = true;
    }

    /// <summary>Flushes what is still held (unfinished calls, the usage) at the end of the answer.</summary>
    public void Complete(List<ChatResponseUpdate> output)
    {
        var contents = new List<AIContent>();
        FlushCalls(contents);
        if (_usage is not null) contents.Add(new UsageContent(_usage));
        _usage = null;
        if (contents.Count > 0) output.Add(Update(contents));
    }

    private static JsonDocument Parse(string json, string where)
    {
        try
        {
            var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind == JsonValueKind.Object) return doc;
            doc.Dispose();
            throw Malformed($"the chat endpoint sent JSON that is not an object in {where}: '{ChatEndpointException.Clip(json)}'");
        }
        catch (JsonException e)
        {
            throw Malformed($"the chat endpoint sent malformed JSON in {where} ({e.Message}): '{ChatEndpointException.Clip(json)}'", e);
        }
    }

    internal static ChatEndpointException Malformed(string message, Exception? inner = null) =>
        new(message, System.Net.HttpStatusCode.OK, null, inner);

    private void Decode(JsonElement root, string deltaName, List<ChatResponseUpdate> output)
    {
        if (root.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
        {
            string message = ChatEndpointException.MessageOf(root) ?? error.GetRawText();
            throw new ChatEndpointException($"the chat endpoint reported an error: {ChatEndpointException.Clip(message)}", null, ChatEndpointException.Clip(message));
        }
        if (String(root, "id") is { Length: > 0 } id) _responseId ??= id;
        if (String(root, "model") is { Length: > 0 } model) _modelId = model;
        if (root.TryGetProperty("created", out var created) && created.ValueKind == JsonValueKind.Number && created.TryGetInt64(out long seconds))
            _created ??= DateTimeOffset.FromUnixTimeSeconds(seconds);
        if (root.TryGetProperty("usage", out var usage)) ReadUsage(usage);

        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind == JsonValueKind.Null) return;
        if (choices.ValueKind != JsonValueKind.Array) throw Malformed($"the chat endpoint sent 'choices' that is not an array: {Clip(choices)}");
        foreach (var choice in choices.EnumerateArray())
        {
            if (choice.ValueKind != JsonValueKind.Object) throw Malformed($"the chat endpoint sent a choice that is not an object: {Clip(choice)}");
            // This client never asks for n > 1; a server that sends other choices anyway is not mixed into the answer.
            if (choice.TryGetProperty("index", out var index) && index.ValueKind == JsonValueKind.Number && index.TryGetInt32(out int i) && i != 0) continue;
            if (choice.TryGetProperty("usage", out var choiceUsage)) ReadUsage(choiceUsage); // Moonshot puts it here
            DecodeChoice(choice, deltaName, output);
        }
    }

    private void DecodeChoice(JsonElement choice, string deltaName, List<ChatResponseUpdate> output)
    {
        var contents = new List<AIContent>();
        if (choice.TryGetProperty(deltaName, out var delta) && delta.ValueKind != JsonValueKind.Null)
        {
            if (delta.ValueKind != JsonValueKind.Object) throw Malformed($"the chat endpoint sent a '{deltaName}' that is not an object: {Clip(delta)}");
            // vLLM's newer releases name the field "reasoning"; Moonshot, SGLang and older vLLM "reasoning_content".
            string? reasoning = String(delta, "reasoning_content") ?? String(delta, "reasoning");
            if (!string.IsNullOrEmpty(reasoning)) contents.Add(new TextReasoningContent(reasoning));
            if (String(delta, "content") is { Length: > 0 } text) contents.Add(new TextContent(text));
            if (delta.TryGetProperty("tool_calls", out var calls) && calls.ValueKind != JsonValueKind.Null) ReadToolCalls(calls);
        }

        ChatFinishReason? finish = null;
        if (String(choice, "finish_reason") is { Length: > 0 } reason)
        {
            finish = FinishReason(reason);
            _finished = true;
            FlushCalls(contents);
        }
        if (contents.Count > 0 || finish is not null)
        {
            var update = Update(contents);
            update.FinishReason = finish;
            output.Add(update);
        }
    }

    private void ReadToolCalls(JsonElement calls)
    {
        if (calls.ValueKind != JsonValueKind.Array) throw Malformed($"the chat endpoint sent 'tool_calls' that is not an array: {Clip(calls)}");
        int position = 0;
        foreach (var fragment in calls.EnumerateArray())
        {
            if (fragment.ValueKind != JsonValueKind.Object) throw Malformed($"the chat endpoint sent a tool call that is not an object: {Clip(fragment)}");
            // Streams index their fragments; a whole message's calls may not, and then their order is the index.
            int index = fragment.TryGetProperty("index", out var i) && i.ValueKind != JsonValueKind.Null
                ? i.ValueKind == JsonValueKind.Number && i.TryGetInt32(out int n) ? n : throw Malformed($"the chat endpoint sent a tool-call index that is not an integer: {Clip(i)}")
                : position;
            position++;
            if (!_calls.TryGetValue(index, out var call)) _calls[index] = call = new PendingCall(index);
            if (String(fragment, "id") is { Length: > 0 } id) call.Id ??= id;
            if (!fragment.TryGetProperty("function", out var function) || function.ValueKind == JsonValueKind.Null) continue;
            if (function.ValueKind != JsonValueKind.Object) throw Malformed($"the chat endpoint sent a tool call 'function' that is not an object: {Clip(function)}");
            if (String(function, "name") is { Length: > 0 } name) call.Name ??= name;
            if (function.TryGetProperty("arguments", out var arguments))
            {
                // Some servers send the arguments as an object rather than the JSON text of one.
                if (arguments.ValueKind == JsonValueKind.String) call.Arguments.Append(arguments.GetString());
                else if (arguments.ValueKind != JsonValueKind.Null) call.Arguments.Append(arguments.GetRawText());
            }
        }
    }

    private void FlushCalls(List<AIContent> contents)
    {
        int ordinal = 0;
        foreach (var call in _calls.Values)
        {
            string name = call.Name ?? throw Malformed($"the chat endpoint sent tool call {call.Index} without a function name");
            string id = call.Id ?? $"functions.{name}:{toolCallOffset + ordinal}";
            contents.Add(FunctionCall(id, name, call.Arguments.ToString()));
            ordinal++;
        }
        toolCallOffset += _calls.Count;
        _calls.Clear();
    }

    private static FunctionCallContent FunctionCall(string id, string name, string arguments)
    {
        // A call without parameters may come with no arguments at all.
        if (string.IsNullOrWhiteSpace(arguments)) return new FunctionCallContent(id, name, new Dictionary<string, object?>());
        string? problem;
        try
        {
            using var doc = JsonDocument.Parse(arguments);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                var parsed = new Dictionary<string, object?>();
                string? repeated = null;
                foreach (var property in doc.RootElement.EnumerateObject())
                    if (!parsed.TryAdd(property.Name, property.Value.Clone())) { repeated = property.Name; break; }
                // The text as the model wrote it goes back verbatim in the next request: K2's template renders it as is.
                if (repeated is null)
                    return new FunctionCallContent(id, name, parsed)
                    {
                        AdditionalProperties = new() { [ChatRequestBuilder.RawArgumentsProperty] = arguments },
                    };
                problem = $"argument '{repeated}' is given more than once";
            }
            else problem = $"they are a JSON {doc.RootElement.ValueKind}, not an object";
        }
        catch (JsonException e)
        {
            problem = $"they are not valid JSON ({e.Message})";
        }
        return new FunctionCallContent(id, name)
        {
            Exception = new InvalidDataException($"the model's arguments for {name} cannot be used: {problem}: {ChatEndpointException.Clip(arguments)}"),
            AdditionalProperties = new() { [ChatRequestBuilder.RawArgumentsProperty] = arguments },
        };
    }

    private void ReadUsage(JsonElement usage)
    {
        if (usage.ValueKind == JsonValueKind.Null) return;
        if (usage.ValueKind != JsonValueKind.Object) throw Malformed($"the chat endpoint sent 'usage' that is not an object: {Clip(usage)}");
        long? prompt = Count(usage, "prompt_tokens"), completion = Count(usage, "completion_tokens");
        long? cached = usage.TryGetProperty("prompt_tokens_details", out var promptDetails) && promptDetails.ValueKind == JsonValueKind.Object
            ? Count(promptDetails, "cached_tokens") : null;
        long? reasoning = usage.TryGetProperty("completion_tokens_details", out var completionDetails) && completionDetails.ValueKind == JsonValueKind.Object
            ? Count(completionDetails, "reasoning_tokens") : null;
        _usage = new UsageDetails
        {
            InputTokenCount = prompt,
            OutputTokenCount = completion,
            TotalTokenCount = Count(usage, "total_tokens") ?? prompt + completion,
            CachedInputTokenCount = cached ?? Count(usage, "cached_tokens"), // Moonshot reports it at the top level
            ReasoningTokenCount = reasoning,
        };
    }

    private static long? Count(JsonElement parent, string name)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long n) ? n : throw Malformed($"the chat endpoint sent usage '{name}' that is not an integer: {Clip(value)}");
    }

    private static ChatFinishReason FinishReason(string reason) => reason switch
    {
        "stop" => ChatFinishReason.Stop,
        "length" => ChatFinishReason.Length,
        "tool_calls" or "function_call" => ChatFinishReason.ToolCalls,
        "content_filter" => ChatFinishReason.ContentFilter,
        _ => new ChatFinishReason(reason),
    };

    private ChatResponseUpdate Update(List<AIContent> contents) => new(ChatRole.Assistant, contents)
    {
        ResponseId = _responseId ?? _fallbackId,
        MessageId = _responseId ?? _fallbackId,
        ModelId = _modelId,
        CreatedAt = _created,
    };

    private static string? String(JsonElement parent, string name)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString()
            : throw Malformed($"the chat endpoint sent '{name}' that is not a string: {Clip(value)}");
    }

    private static string Clip(JsonElement element) => ChatEndpointException.Clip(element.GetRawText());
}
