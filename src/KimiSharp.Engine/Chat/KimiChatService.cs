using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Model;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Tokens.Templates;
using KimiSharp.Tokens.Tokenization;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Engine.Chat;

/// <summary>
/// A K2-family model ready to chat: checkpoint, tokenizer, the folder's own chat template, the generation engine
/// and the output parser. Conversations go in as OpenAI-shaped messages; reasoning, content and tool calls come
/// out as a stream.
/// </summary>
public sealed class KimiChatService : IAsyncDisposable
{
    private readonly HashSet<int> _stopTokens;

    public KimiModel Model { get; }
    public KimiTokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }
    public GenerationEngine Engine { get; }
    /// <summary>The name clients use for this model (the folder name unless set).</summary>
    public string ModelId { get; }

    public KimiChatService(KimiModel model, KimiTokenizer tokenizer, ChatTemplate template, EngineOptions? engineOptions = null,
        string? modelId = null, ILoggerFactory? loggerFactory = null)
    {
        Model = model;
        Tokenizer = tokenizer;
        Template = template;
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} ids but the model's vocab_size is {model.Config.VocabSize}");
        Engine = new GenerationEngine(model, engineOptions, loggerFactory?.CreateLogger<GenerationEngine>());
        ModelId = modelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model.Directory)));
        _stopTokens = [.. model.Config.EosTokenIds.Where(id => id < tokenizer.VocabSize)];
        foreach (var id in new[] { tokenizer.ImEndId, tokenizer.EosId }) if (id is int i) _stopTokens.Add(i);
    }

    /// <summary>Loads model, tokenizer and chat template from a Hugging Face folder.</summary>
    public static KimiChatService Load(string directory, EngineOptions? engineOptions = null, string? modelId = null,
        ILoggerFactory? loggerFactory = null, IProgress<LoadProgress>? progress = null, KimiModelLoadOptions? loadOptions = null)
    {
        var tokenizer = KimiTokenizer.FromModelDirectory(directory);
        var template = ChatTemplate.FromModelDirectory(directory);
        var model = KimiModel.Load(directory, loadOptions ?? new KimiModelLoadOptions(), progress);
        try { return new KimiChatService(model, tokenizer, template, engineOptions, modelId, loggerFactory); }
        catch { model.Dispose(); throw; }
    }

    public IReadOnlyCollection<int> StopTokens => _stopTokens;

    /// <summary>The prompt text the template renders for <paramref name="request"/>.</summary>
    public string RenderPrompt(ChatRequest request, bool addGenerationPrompt = true)
    {
        var tools = request.ToolChoice is ToolChoice.NoneChoice ? null : request.Tools;
        return Template.Render(request.Messages, tools is { Count: > 0 } ? tools : null, addGenerationPrompt, request.TemplateVariables);
    }

    /// <summary>Generates the assistant's next turn.</summary>
    public async IAsyncEnumerable<ChatEvent> ChatAsync(ChatRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string prompt = RenderPrompt(request);
        var promptTokens = Tokenizer.Encode(prompt, allowSpecial: true);
        var options = request.Generation with
        {
            StopTokens = _stopTokens,
            Constraint = ChatConstraints.For(request, this),
        };
        var parser = new KimiTokenStreamParser(Tokenizer);
        var pieces = new List<ParserEvent>();
        var stop = new StopStringMatcher(request.Stop);
        bool sawToolCall = false;
        string? stoppedBy = null;
        int completionTokens = 0, cachedTokens = 0;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        await foreach (var e in Engine.GenerateAsync(promptTokens, options, linked.Token).ConfigureAwait(false))
        {
            switch (e)
            {
                case PromptProcessed p:
                    cachedTokens = p.CachedTokens;
                    yield return new ChatStarted(p.PromptTokens, p.CachedTokens);
                    break;
                case TokenGenerated t:
                    completionTokens++;
                    if (request.Generation.Logprobs) yield return TokenEvent(t);
                    if (_stopTokens.Contains(t.Token)) break; // the end marker is not part of the answer
                    pieces.Clear();
                    parser.Feed(t.Token, pieces);
                    foreach (var piece in pieces)
                    {
                        if (piece is ToolCallStart) sawToolCall = true;
                        if (piece is ContentDelta content && stop.Active)
                        {
                            var (emit, hit) = stop.Push(content.Text);
                            if (emit.Length > 0) yield return new ChatOutput(new ContentDelta(emit));
                            if (hit is not null) { stoppedBy = hit; break; }
                        }
                        else yield return new ChatOutput(piece);
                    }
                    if (stoppedBy is not null)
                    {
                        linked.Cancel(); // frees the engine slot now
                        yield return new ChatCompleted("stop", new ChatUsage(promptTokens.Count, completionTokens, cachedTokens), stoppedBy);
                        yield break;
                    }
                    break;
                case GenerationFinished f:
                    string tail = stop.Flush();
                    if (tail.Length > 0) yield return new ChatOutput(new ContentDelta(tail));
                    pieces.Clear();
                    parser.Finish(pieces, f.Reason == KimiSharp.Engine.FinishReason.Length ? Tokens.Parsing.FinishReason.Length : null);
                    foreach (var piece in pieces)
                    {
                        if (piece is ToolCallStart) sawToolCall = true;
                        if (piece is End) continue;
                        yield return new ChatOutput(piece);
                    }
                    string reason = f.Reason == KimiSharp.Engine.FinishReason.Length ? "length" : sawToolCall ? "tool_calls" : "stop";
                    yield return new ChatCompleted(reason, new ChatUsage(f.PromptTokens, f.CompletionTokens, f.CachedTokens));
                    break;
            }
        }
    }

    /// <summary>
    /// Raw text completion (no chat template): streams the decoded text, ending at the model's end tokens,
    /// a stop string, or max_tokens.
    /// </summary>
    public async IAsyncEnumerable<ChatEvent> CompleteAsync(IReadOnlyList<int> promptTokens, GenerationOptions generation,
        IReadOnlyList<string> stop, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var options = generation with { StopTokens = _stopTokens };
        var decoder = Tokenizer.CreateIncrementalDecoder();
        var stops = new StopStringMatcher(stop);
        int completionTokens = 0, cachedTokens = 0;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await foreach (var e in Engine.GenerateAsync(promptTokens, options, linked.Token).ConfigureAwait(false))
        {
            switch (e)
            {
                case PromptProcessed p:
                    cachedTokens = p.CachedTokens;
                    yield return new ChatStarted(p.PromptTokens, p.CachedTokens);
                    break;
                case TokenGenerated t:
                    completionTokens++;
                    if (generation.Logprobs) yield return TokenEvent(t);
                    if (_stopTokens.Contains(t.Token)) break;
                    string text = decoder.Push(t.Token);
                    if (text.Length == 0) break;
                    if (!stops.Active) { yield return new ChatOutput(new ContentDelta(text)); break; }
                    var (emit, hit) = stops.Push(text);
                    if (emit.Length > 0) yield return new ChatOutput(new ContentDelta(emit));
                    if (hit is not null)
                    {
                        linked.Cancel();
                        yield return new ChatCompleted("stop", new ChatUsage(promptTokens.Count, completionTokens, cachedTokens), hit);
                        yield break;
                    }
                    break;
                case GenerationFinished f:
                    string tail = stops.Active ? stops.Flush() + decoder.Flush() : decoder.Flush();
                    if (tail.Length > 0) yield return new ChatOutput(new ContentDelta(tail));
                    yield return new ChatCompleted(f.Reason == KimiSharp.Engine.FinishReason.Length ? "length" : "stop",
                        new ChatUsage(f.PromptTokens, f.CompletionTokens, f.CachedTokens));
                    break;
            }
        }
    }

    private ChatToken TokenEvent(TokenGenerated t) => new(t.Token, TokenText(t.Token), t.Logprob,
        t.TopLogprobs?.Where(x => x.Token >= 0).Select(x => (TokenText(x.Token), x.Logprob)).ToArray());

    /// <summary>A token's text for display (special tokens by name, byte fragments lossily).</summary>
    public string TokenText(int token) =>
        Tokenizer.IdToToken(token) ?? Encoding.UTF8.GetString(Tokenizer.GetTokenBytes(token));

    public ValueTask DisposeAsync()
    {
        var disposing = Engine.DisposeAsync();
        return Finish(disposing);
        async ValueTask Finish(ValueTask pending)
        {
            await pending.ConfigureAwait(false);
            Model.Dispose();
        }
    }
}

/// <summary>
/// Holds back just enough content to recognise a stop string split across tokens; emits everything before it.
/// </summary>
internal sealed class StopStringMatcher(IReadOnlyList<string> stops)
{
    private readonly StringBuilder _pending = new();
    private readonly int _longest = stops.Count == 0 ? 0 : stops.Max(s => s.Length);
    public bool Active => _longest > 0;

    /// <summary>Adds text; returns what can be emitted and the stop string that matched, if any.</summary>
    public (string Emit, string? Hit) Push(string text)
    {
        _pending.Append(text);
        string buffer = _pending.ToString();
        int first = -1;
        string? hit = null;
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            int at = buffer.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) { first = at; hit = s; }
        }
        if (hit is not null)
        {
            _pending.Clear();
            return (buffer[..first], hit);
        }
        int keep = Math.Min(buffer.Length, _longest - 1);
        _pending.Clear().Append(buffer, buffer.Length - keep, keep);
        return (buffer[..^keep], null);
    }

    public string Flush()
    {
        string rest = _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
