using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Agent.Tools;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Tokens.Parsing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Agent;

/// <summary>How an <see cref="AgentRunner"/> runs a task.</summary>
public sealed record AgentOptions
{
    /// <summary>The context policy the model was trained with: each step's prompt is <c>Window.Visible(messages)</c>.</summary>
    public ContextWindow Window { get; init; } = new(4);
    /// <summary>Model steps (assistant messages) at most.</summary>
    public int MaxSteps { get; init; } = 400;
    /// <summary>Tokens one step may generate.</summary>
    public int MaxTokensPerStep { get; init; } = 384;
    /// <summary>Sampling settings; greedy by default. <see cref="GenerationOptions.MaxTokens"/> is replaced per step.</summary>
    public GenerationOptions Generation { get; init; } = new() { Temperature = 0 };
    /// <summary>Generated tokens over the whole run at most.</summary>
    public long TokenBudget { get; init; } = 400_000;
}

/// <summary>
/// What an agent run reports, in order: pieces of each step, its tool calls and their results, then
/// <see cref="Finished"/> (always last, unless the run is cancelled or fails).
/// </summary>
public abstract record AgentEvent
{
    private AgentEvent() { }

    /// <summary>A piece of the model's reasoning in the current step.</summary>
    public sealed record ReasoningDelta(string Text) : AgentEvent;

    /// <summary>A piece of the model's visible content in the current step.</summary>
    public sealed record ContentDelta(string Text) : AgentEvent;

    /// <summary>The model called a tool (reported before the tool runs).</summary>
    public sealed record ToolCalled(string Id, string Name, string Arguments) : AgentEvent;

    /// <summary>A tool's answer, or the error returned for a malformed call.</summary>
    public sealed record ToolReturned(string Id, string Name, string Content, bool IsError) : AgentEvent;

    /// <summary>The run is over.</summary>
    public sealed record Finished(AgentResult Result) : AgentEvent;
}

/// <summary>The outcome of one agent run.</summary>
/// <param name="FinalAnswer">Content of the last step when it called no tool; null when the run stopped otherwise.</param>
/// <param name="Messages">The whole conversation (input plus every assistant and tool message), not windowed.</param>
/// <param name="ToolCalls">Tool calls the model made, malformed ones included.</param>
/// <param name="MalformedCalls">Calls with unparseable arguments or an undeclared tool name (answered with an error, not run).</param>
/// <param name="Steps">Model steps generated.</param>
/// <param name="GeneratedTokens">Tokens generated over all steps.</param>
/// <param name="StopReason"><c>answer</c>, <c>max-steps</c>, <c>token-budget</c> or <c>length</c>.</param>
public sealed record AgentResult(string? FinalAnswer, JsonArray Messages, int ToolCalls, int MalformedCalls, int Steps,
    long GeneratedTokens, string StopReason)
{
    public const string Answer = "answer", MaxSteps = "max-steps", TokenBudget = "token-budget", Length = "length";
}

/// <summary>
/// Generates one assistant step for a request. <see cref="KimiChatService"/> is the real one; tests script steps.
/// </summary>
public interface IAgentModel
{
    IAsyncEnumerable<ChatEvent> StepAsync(ChatRequest request, CancellationToken cancellationToken);
}

/// <summary>Runs steps on a loaded <see cref="KimiChatService"/>.</summary>
public sealed class ChatServiceAgentModel(KimiChatService service) : IAgentModel
{
    public KimiChatService Service { get; } = service ?? throw new ArgumentNullException(nameof(service));

    public IAsyncEnumerable<ChatEvent> StepAsync(ChatRequest request, CancellationToken cancellationToken) =>
        Service.ChatAsync(request, cancellationToken);
}

/// <summary>
/// The tool-use loop: the model thinks, calls tools, reads their results and answers. Each step sees
/// <c>Window.Visible(messages)</c> — the conversation through the last user message and a window of recent steps —
/// exactly the context the model was trained with; the full conversation is kept in <see cref="AgentResult.Messages"/>.
/// </summary>
public sealed class AgentRunner
{
    private readonly IAgentModel _model;
    private readonly Toolbox _tools;
    private readonly AgentOptions _options;
    private readonly ILogger _logger;
    private readonly JsonArray _declarations;
    private readonly HashSet<string> _declaredNames = new(StringComparer.Ordinal);

    public AgentRunner(KimiChatService service, Toolbox tools, AgentOptions? options = null, ILogger? logger = null)
        : this(new ChatServiceAgentModel(service), tools, options, logger) { }

    public AgentRunner(IAgentModel model, Toolbox tools, AgentOptions? options = null, ILogger? logger = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tools = tools ?? throw new ArgumentNullException(nameof(tools));
        _options = options ?? new AgentOptions();
        if (_options.MaxSteps < 1) throw new ArgumentException("MaxSteps must be at least 1", nameof(options));
        if (_options.MaxTokensPerStep < 1) throw new ArgumentException("MaxTokensPerStep must be at least 1", nameof(options));
        if (_options.TokenBudget < 1) throw new ArgumentException("TokenBudget must be at least 1", nameof(options));
        _logger = logger ?? NullLogger.Instance;
        _declarations = tools.Declarations();
        foreach (var tool in tools.Tools) _declaredNames.Add(tool.Name);
    }

    public AgentOptions Options => _options;

    /// <summary>
    /// Runs the task that <paramref name="conversation"/> ends with (earlier turns before it). The input is not changed;
    /// the runner works on a copy, which <see cref="AgentEvent.Finished"/> returns.
    /// </summary>
    public async IAsyncEnumerable<AgentEvent> RunAsync(JsonArray conversation, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        var messages = (JsonArray)conversation.DeepClone();
        int steps = 0, toolCalls = 0, malformed = 0;
        int callIndex = CallsInCurrentTask(messages);
        long generated = 0;
        string? finalAnswer = null;
        string stopReason = AgentResult.MaxSteps;
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        var calls = new List<PendingCall>();

        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (steps >= _options.MaxSteps) { stopReason = AgentResult.MaxSteps; break; }
            long remaining = _options.TokenBudget - generated;
            if (remaining <= 0) { stopReason = AgentResult.TokenBudget; break; }

            var request = new ChatRequest
            {
                Messages = _options.Window.Visible(messages),
                Tools = _declarations.Count > 0 ? (JsonArray)_declarations.DeepClone() : null,
                Generation = _options.Generation with { MaxTokens = (int)Math.Min(_options.MaxTokensPerStep, remaining) },
            };
            reasoning.Clear();
            content.Clear();
            calls.Clear();
            var finish = FinishReason.Stop;
            int stepTokens = 0;
            bool budgetCut = remaining < _options.MaxTokensPerStep;

            await foreach (var e in _model.StepAsync(request, cancellationToken).ConfigureAwait(false))
            {
                switch (e)
                {
                    case ChatOutput { Piece: ReasoningDelta r }:
                        reasoning.Append(r.Text);
                        yield return new AgentEvent.ReasoningDelta(r.Text);
                        break;
                    case ChatOutput { Piece: ContentDelta c }:
                        content.Append(c.Text);
                        yield return new AgentEvent.ContentDelta(c.Text);
                        break;
                    case ChatOutput { Piece: ToolCallStart s }:
                        calls.Add(new PendingCall(s.Index, s.Name));
                        break;
                    case ChatOutput { Piece: ToolCallArgumentsDelta a }:
                        Find(calls, a.Index)?.Arguments.Append(a.Text);
                        break;
                    case ChatOutput { Piece: ToolCallEnd end }:
                        if (Find(calls, end.Index) is { } call)
                        {
                            call.Ended = true;
                            call.Error = end.Error;
                            call.Arguments.Clear().Append(end.ArgumentsJson);
                        }
                        break;
                    case ChatCompleted done:
                        finish = done.FinishReason;
                        stepTokens = done.Usage.CompletionTokens;
                        break;
                }
            }
            cancellationToken.ThrowIfCancellationRequested();
            steps++;
            generated += stepTokens;

            var assistant = new JsonObject { ["role"] = "assistant" };
            if (reasoning.Length > 0) assistant["reasoning_content"] = reasoning.ToString();
            assistant["content"] = content.ToString();
            if (calls.Count == 0)
            {
                messages.Add(assistant);
                if (finish == FinishReason.Length)
                {
                    stopReason = budgetCut ? AgentResult.TokenBudget : AgentResult.Length;
                    _logger.LogDebug("agent step {Step} hit the token limit without a tool call", steps);
                }
                else
                {
                    stopReason = AgentResult.Answer;
                    finalAnswer = content.ToString();
                }
                break;
            }

            var toolCallArray = new JsonArray();
            var ids = new string[calls.Count];
            for (int i = 0; i < calls.Count; i++)
            {
                ids[i] = $"functions.{calls[i].Name}:{callIndex++}";
                toolCallArray.Add(new JsonObject
                {
                    ["id"] = ids[i],
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = calls[i].Name, ["arguments"] = calls[i].Arguments.ToString() },
                });
            }
            assistant["tool_calls"] = toolCallArray;
            messages.Add(assistant);

            for (int i = 0; i < calls.Count; i++)
            {
                var call = calls[i];
                string arguments = call.Arguments.ToString();
                toolCalls++;
                yield return new AgentEvent.ToolCalled(ids[i], call.Name, arguments);
                ToolResult result;
                if (!call.Ended || call.Error is not null)
                {
                    malformed++;
                    result = ToolResult.Error($"malformed call to '{call.Name}': {call.Error ?? "the call was not terminated"}");
                }
                else if (!_declaredNames.Contains(call.Name))
                {
                    malformed++;
                    result = ToolResult.Error($"unknown tool '{call.Name}' (known: {string.Join(", ", _declaredNames)})");
                }
                else result = _tools.Invoke(call.Name, arguments);
                messages.Add(new JsonObject
                {
                    ["role"] = "tool", ["tool_call_id"] = ids[i], ["name"] = call.Name, ["content"] = result.Content,
                });
                yield return new AgentEvent.ToolReturned(ids[i], call.Name, result.Content, result.IsError);
            }
        }

        _logger.LogInformation("agent run stopped ({Reason}) after {Steps} steps, {Calls} tool calls ({Malformed} malformed), {Tokens} tokens",
            stopReason, steps, toolCalls, malformed, generated);
        yield return new AgentEvent.Finished(new AgentResult(finalAnswer, messages, toolCalls, malformed, steps, generated, stopReason));
    }

    /// <summary>Runs to the end, ignoring the stream, and returns the result.</summary>
    public async Task<AgentResult> RunToEndAsync(JsonArray conversation, CancellationToken cancellationToken = default)
    {
        AgentResult? result = null;
        await foreach (var e in RunAsync(conversation, cancellationToken).ConfigureAwait(false))
            if (e is AgentEvent.Finished f) result = f.Result;
        return result ?? throw new InvalidOperationException("the agent run ended without a result");
    }

    /// <summary>Tool calls already made after the last user message (continuing a task keeps ids unique).</summary>
    private static int CallsInCurrentTask(JsonArray messages)
    {
        var (_, steps) = ContextWindow.Split(messages);
        int count = 0;
        foreach (var step in steps)
            foreach (var m in step)
                if (m["tool_calls"] is JsonArray a) count += a.Count;
        return count;
    }

    private static PendingCall? Find(List<PendingCall> calls, int index)
    {
        for (int i = calls.Count - 1; i >= 0; i--)
            if (calls[i].Index == index) return calls[i];
        return null;
    }

    private sealed class PendingCall(int index, string name)
    {
        public int Index { get; } = index;
        public string Name { get; } = name;
        public StringBuilder Arguments { get; } = new();
        public bool Ended { get; set; }
        public string? Error { get; set; }
    }
}
