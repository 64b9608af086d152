using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using Microsoft.Extensions.AI;

namespace KimiSharp.Synthesis;

/// <summary>
/// A deterministic model that replays teacher trajectories: a request is matched to a trajectory by its first user
/// message, and step k (the number of assistant messages already in the request) returns the trajectory's k-th
/// assistant message — its reasoning, content and tool calls with their exact argument text. Synthesis runs the
/// real swarm through it so that the <c>spawn_agents</c> results in the training data are the runtime's own; tests
/// use it as a scripted model. Every replay assumes the agent keeps all of its steps in context (wide tasks take at
/// most three).
/// </summary>
public sealed class TeacherReplayClient : IChatClient
{
    private readonly ConcurrentDictionary<string, JsonArray> _byPrompt = new(StringComparer.Ordinal);

    /// <summary>Adds a trajectory to replay (a later one with the same first user message replaces it).</summary>
    public void Add(JsonArray messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        string prompt = messages.OfType<JsonObject>().FirstOrDefault(m => AgentMessages.Role(m) == "user") is { } user
            ? AgentMessages.Text(user["content"]) : throw new ArgumentException("the trajectory has no user message", nameof(messages));
        _byPrompt[prompt] = messages;
    }

    /// <summary>The prompts of every request received, in arrival order (one per step).</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.ToList();
        string prompt = list.FirstOrDefault(m => m.Role == ChatRole.User)?.Text
            ?? throw new InvalidOperationException("the request has no user message to match a teacher trajectory by");
        Requests.Enqueue(prompt);
        if (!_byPrompt.TryGetValue(prompt, out var trajectory))
            throw new InvalidOperationException($"no teacher trajectory starts with the request '{Clip(prompt)}'");
        int step = list.Count(m => m.Role == ChatRole.Assistant);
        var assistant = trajectory.OfType<JsonObject>().Where(m => AgentMessages.Role(m) == "assistant").ElementAtOrDefault(step)
            ?? throw new InvalidOperationException($"the teacher trajectory for '{Clip(prompt)}' has no step {step + 1}");
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();

        if (assistant["reasoning_content"]?.GetValue<string>() is { Length: > 0 } reasoning)
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new TextReasoningContent(reasoning)]);
        if (assistant["content"]?.GetValue<string>() is { Length: > 0 } content)
            yield return new ChatResponseUpdate(ChatRole.Assistant, content);
        var calls = assistant["tool_calls"] as JsonArray ?? [];
        foreach (var call in calls.OfType<JsonObject>())
        {
            string name = call["function"]!["name"]!.GetValue<string>(), arguments = call["function"]!["arguments"]!.GetValue<string>();
            yield return new ChatResponseUpdate(ChatRole.Assistant,
                [new FunctionCallContent(call["id"]?.GetValue<string>() ?? "", name) { AdditionalProperties = new() { [AgentMessages.RawArgumentsKey] = arguments } }]);
        }
        // Usage in tokens is a stand-in (characters / 4): the replay has no tokenizer, and the metrics only need it positive.
        long output = (assistant.ToJsonString().Length + 3) / 4;
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = 1, OutputTokenCount = output })])
        {
            FinishReason = calls.Count > 0 ? ChatFinishReason.ToolCalls : ChatFinishReason.Stop,
        };
    }

    private static string Clip(string text) => text.Length > 80 ? text[..80] + "…" : text;

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose() { }
}
