using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Swarm;

/// <summary>
/// A thread-safe scripted model for many agents at once: <see cref="Script"/> decides each step from the request (the
/// messages in the OpenAI shape — from the user message it can tell which agent asks, from the assistant messages
/// which step it is) and may wait, throw or hang. Every request is recorded.
/// </summary>
internal sealed class SwarmTestModel(Func<SwarmRequest, CancellationToken, Task<ScriptedStep>> script) : IChatClient
{
    public ConcurrentQueue<SwarmRequest> Requests { get; } = new();

    public Func<SwarmRequest, CancellationToken, Task<ScriptedStep>> Script { get; } = script;

    public SwarmTestModel(Func<SwarmRequest, ScriptedStep> script) : this((r, _) => Task.FromResult(script(r))) { }

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var json = ScriptedModel.ToJson(messages);
        var request = new SwarmRequest(json, (options?.Tools ?? []).Select(t => t.Name).ToArray());
        Requests.Enqueue(request);
        var step = await Script(request, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        if (step.Reasoning.Length > 0) yield return new ChatResponseUpdate(ChatRole.Assistant, [new TextReasoningContent(step.Reasoning)]);
        if (step.Content.Length > 0) yield return new ChatResponseUpdate(ChatRole.Assistant, step.Content);
        for (int i = 0; i < step.Calls.Length; i++)
        {
            var (name, arguments, _) = step.Calls[i];
            yield return new ChatResponseUpdate(ChatRole.Assistant,
                [new FunctionCallContent($"call_{Guid.NewGuid():N}", name) { AdditionalProperties = new() { [AgentMessages.RawArgumentsKey] = arguments } }]);
        }
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = 50, OutputTokenCount = step.Tokens })])
        {
            FinishReason = step.Finish ?? (step.Calls.Length > 0 ? ChatFinishReason.ToolCalls : ChatFinishReason.Stop),
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose() { }

    public static ScriptedStep Call(string name, string arguments) => new("", "", [(name, arguments, null)]);

    public static ScriptedStep Answer(string text) => new("", text, []);
}

/// <summary>One request to <see cref="SwarmTestModel"/>.</summary>
internal sealed record SwarmRequest(JsonArray Messages, string[] ToolNames)
{
    /// <summary>The task (the first user message).</summary>
    public string Task => AgentMessages.Text(Messages.First(m => AgentMessages.Role(m) == "user")!["content"]);

    /// <summary>Steps already taken in this conversation.</summary>
    public int Step => Messages.Count(m => AgentMessages.Role(m) == "assistant");

    /// <summary>The content of the last tool result.</summary>
    public string LastToolResult => AgentMessages.Text(Messages.Last(m => AgentMessages.Role(m) == "tool")!["content"]);
}
