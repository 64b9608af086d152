using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Model;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Tokens.Templates;
using KimiSharp.Tokens.Tokenization;
using KimiSharp.Vision;
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
    /// <summary>The K2.5 vision tower, when the model folder has one (config.json's <c>vision_config</c>); images need it.</summary>
    public ChatVision? Vision { get; init; }
    /// <summary>How image parts are accepted (remote URLs, size limits).</summary>
    public ChatMediaOptions MediaOptions { get; set; } = new();

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
        ChatVision? vision = null;
        try
        {
            if (ChatVision.IsPresent(directory)) vision = ChatVision.Load(directory, model.Config.HiddenSize, tokenizer, model.Kernels);
            return new KimiChatService(model, tokenizer, template, engineOptions, modelId, loggerFactory) { Vision = vision };
        }
        catch
        {
            vision?.Dispose();
            model.Dispose();
            throw;
        }
    }

    public IReadOnlyCollection<int> StopTokens => _stopTokens;

    /// <summary>The prompt text the template renders for <paramref name="request"/>.</summary>
    public string RenderPrompt(ChatRequest request, bool addGenerationPrompt = true)
    {
        var tools = request.ToolChoice is ToolChoice.NoneChoice ? null : request.Tools;
        return Template.Render(request.Messages, tools is { Count: > 0 } ? tools : null, addGenerationPrompt, request.TemplateVariables);
    }

    /// <summary>
    /// Generates the assistant's next turn. Everything that can refuse the request (template, context limit,
    /// KV budget, a full queue: <see cref="EngineBusyException"/>) throws here, before the first event, so a server
    /// can answer with an error status before it starts a stream. Cancelling <paramref name="cancellationToken"/>
    /// frees the engine slot even if the events are never read.
    /// </summary>
    public IAsyncEnumerable<ChatEvent> ChatAsync(ChatRequest request, CancellationToken cancellationToken = default)
    {
        var media = DecodeMedia(request.Messages, cancellationToken);
        string prompt = RenderPrompt(request);
        var videos = media.Where(m => m.Chunks is not null).Select(m => m.Chunks!).ToList();
        if (videos.Count > 0)
        {
            // The template writes one placeholder per video; K2.5's processor puts each chunk's timestamped media block there.
            try { prompt = VideoPrompt.ReplacePlaceholders(prompt, videos); }
            catch (ArgumentException e) { throw new ChatMediaException($"the model folder's chat template does not place video parts: {e.Message}", e); }
        }
        IReadOnlyList<int> promptTokens = Tokenizer.Encode(prompt, allowSpecial: true);
        var options = request.Generation with
        {
            StopTokens = request.Generation.IgnoreEos ? [] : _stopTokens,
            Constraint = ChatConstraints.For(request, this),
        };
        PromptEmbeddings? embeddings = null;
        if (media.Length > 0)
        {
            // Every image and video chunk of the request goes through the tower in one batch.
            var (features, keys) = Vision!.Encode(media, cancellationToken);
            (promptTokens, embeddings) = ChatImages.Expand(promptTokens, Vision.PlaceholderTokenId, features, keys, Model.Config.HiddenSize);
        }
        return Start(promptTokens, embeddings, options, request.Stop, new ParsedPieces(new KimiTokenStreamParser(Tokenizer, KimiOutputParserOptions.ForPrompt(prompt))), cancellationToken);
    }

    /// <summary>
    /// The request's images and videos (image_url and video_url parts, in message order), decoded; refused with a
    /// <see cref="ChatMediaException"/> when one is bad or the model has no vision tower.
    /// </summary>
    public ChatMedia[] DecodeMedia(JsonArray messages, CancellationToken cancellationToken = default)
    {
        var parts = ChatImages.Find(messages);
        if (parts.Count == 0) return [];
        if (Vision is null)
            throw new ChatMediaException($"{parts[0].Path}: the model '{ModelId}' has no vision tower (its config.json has no vision_config), so it cannot read images or video");
        return ChatImages.DecodeMedia(parts, MediaOptions, Vision.Chunker, cancellationToken);
    }

    /// <summary>
    /// Raw text completion (no chat template): streams the decoded text, ending at the model's end tokens,
    /// a stop string, or max_tokens. Refusals throw here, as for <see cref="ChatAsync"/>.
    /// </summary>
    public IAsyncEnumerable<ChatEvent> CompleteAsync(IReadOnlyList<int> promptTokens, GenerationOptions generation,
        IReadOnlyList<string> stop, CancellationToken cancellationToken = default) =>
        Start(promptTokens, null, generation with { StopTokens = generation.IgnoreEos ? [] : _stopTokens }, stop, new DecodedText(Tokenizer.CreateIncrementalDecoder()), cancellationToken);

    /// <summary>
    /// Raw completion of <paramref name="promptTokens"/> with <paramref name="images"/> put at its media placeholders
    /// (one <see cref="ChatVision.PlaceholderTokenId"/> per image, in order), all encoded in one batch.
    /// </summary>
    public IAsyncEnumerable<ChatEvent> CompleteAsync(IReadOnlyList<int> promptTokens, IReadOnlyList<RgbImage> images, GenerationOptions generation,
        IReadOnlyList<string> stop, CancellationToken cancellationToken = default)
    {
        if (images.Count == 0) return CompleteAsync(promptTokens, generation, stop, cancellationToken);
        if (Vision is null) throw new ChatMediaException($"the model '{ModelId}' has no vision tower (its config.json has no vision_config), so it cannot read images");
        var (features, keys) = Vision.Encode(images, cancellationToken);
        var (tokens, embeddings) = ChatImages.Expand(promptTokens, Vision.PlaceholderTokenId, features, keys, Model.Config.HiddenSize);
        return Start(tokens, embeddings, generation with { StopTokens = generation.IgnoreEos ? [] : _stopTokens }, stop,
            new DecodedText(Tokenizer.CreateIncrementalDecoder()), cancellationToken);
    }

    private IAsyncEnumerable<ChatEvent> Start(IReadOnlyList<int> promptTokens, PromptEmbeddings? embeddings, GenerationOptions options,
        IReadOnlyList<string> stop, IPieceSource source, CancellationToken cancellationToken)
    {
        // Linked so a stop string can end the generation (and free its slot) without cancelling the caller.
        var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var generation = Engine.GenerateAsync(promptTokens, embeddings, options, linked.Token);
            return Stream(generation, linked, promptTokens.Count, embeddings?.ContentKeys.Count ?? 0, options.Logprobs, new StopStringMatcher(stop), source);
        }
        catch
        {
            linked.Dispose();
            throw;
        }
    }

    /// <summary>The one loop from engine events to chat events: pieces, stop strings, logprobs, the final reason.</summary>
    private async IAsyncEnumerable<ChatEvent> Stream(IAsyncEnumerable<GenerationEvent> generation, CancellationTokenSource linked,
        int promptTokens, int imageTokens, bool logprobs, StopStringMatcher stop, IPieceSource source)
    {
        using var ownedLinked = linked;
        var pieces = new List<ParserEvent>();
        var outbox = new List<ChatEvent>();
        int completionTokens = 0, cachedTokens = 0;
        await foreach (var e in generation.ConfigureAwait(false))
        {
            switch (e)
            {
                case PromptProcessed p:
                    cachedTokens = p.CachedTokens;
                    yield return new ChatStarted(p.PromptTokens, p.CachedTokens);
                    break;
                case TokenGenerated t:
                    completionTokens++;
                    if (logprobs) yield return TokenEvent(t);
                    if (_stopTokens.Contains(t.Token)) break; // the end marker is not part of the answer
                    pieces.Clear();
                    source.Feed(t.Token, pieces);
                    string? hit = Route(pieces, stop, outbox, out _);
                    foreach (var o in outbox) yield return o;
                    if (hit is not null)
                    {
                        linked.Cancel(); // frees the engine slot now
                        yield return new ChatCompleted(FinishReason.StopSequence, new ChatUsage(promptTokens, completionTokens, cachedTokens) { ImageTokens = imageTokens }, hit);
                        yield break;
                    }
                    break;
                case GenerationFinished f:
                    pieces.Clear();
                    source.Finish(f.Reason, pieces);
                    string? lastHit = Route(pieces, stop, outbox, out var ended);
                    if (lastHit is null && stop.Flush() is { Length: > 0 } tail) outbox.Add(new ChatOutput(new ContentDelta(tail)));
                    foreach (var o in outbox) yield return o;
                    var usage = new ChatUsage(f.PromptTokens, f.CompletionTokens, f.CachedTokens) { ImageTokens = imageTokens };
                    yield return lastHit is not null ? new ChatCompleted(FinishReason.StopSequence, usage, lastHit)
                        : new ChatCompleted(ended ?? f.Reason, usage);
                    yield break;
            }
        }
    }

    /// <summary>
    /// Moves <paramref name="pieces"/> to <paramref name="outbox"/> (cleared first), content through the stop-string
    /// matcher. Returns the stop string that matched (nothing after it is moved); <paramref name="ended"/> is the
    /// reason of an <see cref="End"/> piece, which is not moved.
    /// </summary>
    private static string? Route(List<ParserEvent> pieces, StopStringMatcher stop, List<ChatEvent> outbox, out FinishReason? ended)
    {
        outbox.Clear();
        ended = null;
        foreach (var piece in pieces)
        {
            switch (piece)
            {
                case End end:
                    ended = end.Reason;
                    break;
                case ContentDelta content when stop.Active:
                    var (emit, hit) = stop.Push(content.Text);
                    if (emit.Length > 0) outbox.Add(new ChatOutput(new ContentDelta(emit)));
                    if (hit is not null) return hit;
                    break;
                default:
                    // Content held back as a possible stop-string prefix goes out first: the content run is over.
                    if (stop.Active && stop.Flush() is { Length: > 0 } held) outbox.Add(new ChatOutput(new ContentDelta(held)));
                    outbox.Add(new ChatOutput(piece));
                    break;
            }
        }
        return null;
    }

    /// <summary>Turns generated ids into output pieces: the chat parser, or plain decoded text.</summary>
    private interface IPieceSource
    {
        void Feed(int token, List<ParserEvent> sink);
        /// <summary>Flushes what is held back and adds an <see cref="End"/> with the final reason.</summary>
        void Finish(FinishReason engineReason, List<ParserEvent> sink);
    }

    private sealed class ParsedPieces(KimiTokenStreamParser parser) : IPieceSource
    {
        public void Feed(int token, List<ParserEvent> sink) => parser.Feed(token, sink);
        // A plain stop lets the parser decide (tool calls, or a call cut off); length and cancellation are facts.
        public void Finish(FinishReason engineReason, List<ParserEvent> sink) =>
            parser.Finish(sink, engineReason == FinishReason.Stop ? null : engineReason);
    }

    private sealed class DecodedText(IncrementalDecoder decoder) : IPieceSource
    {
        public void Feed(int token, List<ParserEvent> sink)
        {
            string text = decoder.Push(token);
            if (text.Length > 0) sink.Add(new ContentDelta(text));
        }

        public void Finish(FinishReason engineReason, List<ParserEvent> sink)
        {
            string tail = decoder.Flush();
            if (tail.Length > 0) sink.Add(new ContentDelta(tail));
            sink.Add(new End(engineReason));
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
            Vision?.Dispose();
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
