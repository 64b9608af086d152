using System.Text;
using System.Text.Json;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Parsing;

/// <summary>
/// Incremental parser for Kimi K2's assistant output (the text generated after
/// <c>&lt;|im_assistant|&gt;assistant&lt;|im_middle|&gt;</c>):
/// <c>[&lt;think&gt;]reasoning&lt;/think&gt; content &lt;|tool_calls_section_begin|&gt;(&lt;|tool_call_begin|&gt;functions.NAME:IDX&lt;|tool_call_argument_begin|&gt;{json}&lt;|tool_call_end|&gt;)*&lt;|tool_calls_section_end|&gt;&lt;|im_end|&gt;</c>.
/// </summary>
/// <remarks>
/// <para>Chunk boundaries never change the result: a chunk ending in a possible marker prefix (say
/// <c>&lt;|tool_ca</c>) is held back until the next chunk decides it, and nothing else is held back.</para>
/// <para>Only the markers that mean something in the current state are recognized, so <c>&lt;/think&gt;</c> after
/// the reasoning ended, or <c>&lt;|tool_call_end</c> without its <c>|&gt;</c> inside arguments, are plain text.</para>
/// <para>Recovery rules (all observed in K2 output, see research §5): a tool-call section also ends reasoning when
/// <c>&lt;/think&gt;</c> is missing; <c>&lt;|tool_call_begin|&gt;</c> outside a section opens one; the singular
/// spelling <c>&lt;|tool_call_section_begin|&gt;</c> is accepted; a call cut off by another marker or by the end of
/// the stream is closed with the arguments received and an error.</para>
/// <para>Not thread-safe: one instance per output stream.</para>
/// </remarks>
public sealed class KimiOutputParser
{
    private const string FunctionsPrefix = "functions.";
    private const string MisspelledSectionBegin = "<|tool_call_section_begin|>";
    private const string MisspelledSectionEnd = "<|tool_call_section_end|>";

    private enum State
    {
        Start,
        Reasoning,
        Content,
        Section,
        CallId,
        CallArgs,
        Ended,
    }

    private enum Marker
    {
        ThinkBegin,
        ThinkEnd,
        SectionBegin,
        SectionEnd,
        CallBegin,
        ArgumentBegin,
        CallEnd,
        ImEnd,
    }

    // Markers recognized in each state. Everything else that starts with '<' is text.
    private static readonly (string Text, Marker Kind)[] ReasoningMarkers =
    [
        (KimiSpecialTokens.ThinkEnd, Marker.ThinkEnd),
        (KimiSpecialTokens.ToolCallsSectionBegin, Marker.SectionBegin), (MisspelledSectionBegin, Marker.SectionBegin),
        (KimiSpecialTokens.ToolCallBegin, Marker.CallBegin),
        (KimiSpecialTokens.ImEnd, Marker.ImEnd),
    ];

    private static readonly (string Text, Marker Kind)[] ContentMarkers =
    [
        (KimiSpecialTokens.ToolCallsSectionBegin, Marker.SectionBegin), (MisspelledSectionBegin, Marker.SectionBegin),
        (KimiSpecialTokens.ToolCallBegin, Marker.CallBegin),
        (KimiSpecialTokens.ImEnd, Marker.ImEnd),
    ];

    private static readonly (string Text, Marker Kind)[] SectionMarkers =
    [
        (KimiSpecialTokens.ToolCallBegin, Marker.CallBegin),
        (KimiSpecialTokens.ToolCallsSectionEnd, Marker.SectionEnd), (MisspelledSectionEnd, Marker.SectionEnd),
        (KimiSpecialTokens.ImEnd, Marker.ImEnd),
    ];

    private static readonly (string Text, Marker Kind)[] CallMarkers =
    [
        (KimiSpecialTokens.ToolCallArgumentBegin, Marker.ArgumentBegin),
        (KimiSpecialTokens.ToolCallEnd, Marker.CallEnd),
        (KimiSpecialTokens.ToolCallBegin, Marker.CallBegin),
        (KimiSpecialTokens.ToolCallsSectionEnd, Marker.SectionEnd), (MisspelledSectionEnd, Marker.SectionEnd),
        (KimiSpecialTokens.ImEnd, Marker.ImEnd),
    ];

    private static readonly (string Text, Marker Kind)[] StartMarkers = [(KimiSpecialTokens.ThinkBegin, Marker.ThinkBegin)];

    private readonly ReasoningMode _mode;
    private readonly StringBuilder _id = new();
    private readonly StringBuilder _args = new();
    private char[] _buffer = new char[256];
    private int _held;          // chars at the start of _buffer carried over from the previous chunk
    private State _state;
    private int _callCount;     // calls opened so far; the open call's index is _callCount - 1
    private bool _callStarted;  // the open call's ToolCallStart has been emitted

    public KimiOutputParser(KimiOutputParserOptions? options = null)
    {
        _mode = (options ?? new KimiOutputParserOptions()).Reasoning;
        _state = _mode == ReasoningMode.None ? State.Content : State.Start;
    }

    /// <summary>Whether the output had a reasoning part (possibly empty, as in <c>&lt;think&gt;&lt;/think&gt;</c>).</summary>
    public bool SawReasoning { get; private set; }

    /// <summary>Whether <see cref="End"/> has been emitted.</summary>
    public bool IsEnded => _state == State.Ended;

    /// <summary>Parses a complete output in one go.</summary>
    public static ParsedOutput Parse(string text, KimiOutputParserOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parser = new KimiOutputParser(options);
        var events = new List<ParserEvent>();
        parser.Feed(text, events);
        parser.Finish(events);
        return ParsedOutput.FromEvents(events, parser.SawReasoning);
    }

    /// <summary>Consumes the next chunk of output; returns the events it completes.</summary>
    public IReadOnlyList<ParserEvent> Feed(string chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        var events = new List<ParserEvent>();
        Feed(chunk, events);
        return events;
    }

    /// <summary>Consumes the next chunk of output, adding the events it completes to <paramref name="sink"/>.</summary>
    public void Feed(ReadOnlySpan<char> chunk, ICollection<ParserEvent> sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (_state == State.Ended || chunk.IsEmpty)
        {
            return; // Kimi stops at <|im_end|>; anything after it is not part of the turn.
        }

        int length = _held + chunk.Length;
        if (length > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(length, _buffer.Length * 2));
        }

        chunk.CopyTo(_buffer.AsSpan(_held));
        int consumed = Process(length, final: false, sink);
        _held = length - consumed;
        _buffer.AsSpan(consumed, _held).CopyTo(_buffer);
    }

    /// <summary>Ends the output: flushes held-back text, closes an open tool call (marked), and emits <see cref="End"/>.</summary>
    /// <param name="reason">
    /// Why generation stopped, if the caller knows (e.g. <see cref="FinishReason.Length"/> at the token limit).
    /// Null: <see cref="FinishReason.Length"/> when a tool call was cut off, else as if <c>&lt;|im_end|&gt;</c> had
    /// arrived (engines usually strip the stop token). <see cref="FinishReason.Stop"/> becomes
    /// <see cref="FinishReason.ToolCalls"/> when tools were called.
    /// </param>
    public IReadOnlyList<ParserEvent> Finish(FinishReason? reason = null)
    {
        var events = new List<ParserEvent>();
        Finish(events, reason);
        return events;
    }

    /// <inheritdoc cref="Finish(FinishReason?)"/>
    public void Finish(ICollection<ParserEvent> sink, FinishReason? reason = null)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (_state == State.Ended)
        {
            return;
        }

        Process(_held, final: true, sink); // a held-back prefix never completes a marker, so this cannot end the output
        _held = 0;
        bool cutOff = _state is State.CallId or State.CallArgs;
        if (cutOff)
        {
            CloseCall(sink, "the output ended inside the tool call (no <|tool_call_end|>)");
        }

        var final = reason ?? (cutOff ? FinishReason.Length : FinishReason.Stop);
        EndOutput(sink, final);
    }

    /// <summary>
    /// Scans _buffer[0..length). Returns how many chars were consumed; the rest (a possible marker prefix, or a
    /// lone high surrogate) is held back. With <paramref name="final"/> everything is consumed.
    /// </summary>
    private int Process(int length, bool final, ICollection<ParserEvent> sink)
    {
        int i = 0;
        while (i < length && _state != State.Ended)
        {
            var rest = _buffer.AsSpan(i, length - i);
            if (_state == State.Start)
            {
                var match = Match(StartMarkers, rest, out _, out int startLen);
                if (match == MatchResult.Prefix && !final)
                {
                    return i;
                }

                if (match == MatchResult.Full)
                {
                    i += startLen;
                    EnterReasoning();
                }
                else if (_mode == ReasoningMode.StartsInReasoning)
                {
                    EnterReasoning();
                }
                else
                {
                    _state = State.Content;
                }

                continue;
            }

            // Find the first '<' that starts a marker of this state (or could, once more text arrives).
            var markers = MarkersOf(_state);
            int from = 0;
            while (true)
            {
                int lt = rest[from..].IndexOf('<');
                if (lt < 0)
                {
                    int end = rest.Length;
                    if (!final && char.IsHighSurrogate(rest[^1]))
                    {
                        end--; // never emit half a character
                    }

                    Text(rest[..end], sink);
                    return i + end;
                }

                lt += from;
                var result = Match(markers, rest[lt..], out var kind, out int markerLen);
                if (result == MatchResult.None || (result == MatchResult.Prefix && final))
                {
                    from = lt + 1;
                    continue;
                }

                Text(rest[..lt], sink);
                if (result == MatchResult.Prefix)
                {
                    return i + lt;
                }

                i += lt + markerLen;
                OnMarker(kind, sink);
                break;
            }
        }

        return final ? length : i;
    }

    private enum MatchResult
    {
        None,
        Prefix,
        Full,
    }

    private static MatchResult Match((string Text, Marker Kind)[] markers, ReadOnlySpan<char> text, out Marker kind, out int length)
    {
        var result = MatchResult.None;
        foreach (var (marker, k) in markers)
        {
            if (text.StartsWith(marker, StringComparison.Ordinal))
            {
                kind = k;
                length = marker.Length;
                return MatchResult.Full;
            }

            if (text.Length < marker.Length && marker.AsSpan().StartsWith(text, StringComparison.Ordinal))
            {
                result = MatchResult.Prefix;
            }
        }

        kind = default;
        length = 0;
        return result;
    }

    private static (string Text, Marker Kind)[] MarkersOf(State state) => state switch
    {
        State.Reasoning => ReasoningMarkers,
        State.Content => ContentMarkers,
        State.Section => SectionMarkers,
        _ => CallMarkers, // CallId and CallArgs
    };

    private void EnterReasoning()
    {
        _state = State.Reasoning;
        SawReasoning = true;
    }

    /// <summary>Routes plain text to the current part.</summary>
    private void Text(ReadOnlySpan<char> text, ICollection<ParserEvent> sink)
    {
        if (text.IsEmpty)
        {
            return;
        }

        switch (_state)
        {
            case State.Reasoning:
                sink.Add(new ReasoningDelta(text.ToString()));
                break;
            case State.Content:
                sink.Add(new ContentDelta(text.ToString()));
                break;
            case State.CallId:
                _id.Append(text);
                break;
            case State.CallArgs:
                var s = text.ToString();
                _args.Append(s);
                sink.Add(new ToolCallArgumentsDelta(_callCount - 1, s));
                break;
            default:
                break; // between calls in a section: separators the model may emit, not content
        }
    }

    private void OnMarker(Marker marker, ICollection<ParserEvent> sink)
    {
        switch (marker)
        {
            case Marker.ThinkEnd:
                _state = State.Content;
                break;
            case Marker.SectionBegin:
                _state = State.Section; // also ends reasoning that lacked </think>
                break;
            case Marker.CallBegin:
                if (_state is State.CallId or State.CallArgs)
                {
                    CloseCall(sink, "the next <|tool_call_begin|> arrived before <|tool_call_end|>");
                }

                _id.Clear();
                _args.Clear();
                _callStarted = false;
                _callCount++;
                _state = State.CallId;
                break;
            case Marker.ArgumentBegin:
                StartCall(sink);
                _state = State.CallArgs;
                break;
            case Marker.CallEnd:
                CloseCall(sink, null);
                _state = State.Section;
                break;
            case Marker.SectionEnd:
                if (_state is State.CallId or State.CallArgs)
                {
                    CloseCall(sink, "the section ended before <|tool_call_end|>");
                }

                _state = State.Content;
                break;
            case Marker.ImEnd:
                if (_state is State.CallId or State.CallArgs)
                {
                    CloseCall(sink, "the turn ended before <|tool_call_end|>");
                }

                EndOutput(sink, FinishReason.Stop);
                break;
        }
    }

    private void StartCall(ICollection<ParserEvent> sink)
    {
        if (_callStarted)
        {
            return;
        }

        string id = _id.ToString().Trim();
        sink.Add(new ToolCallStart(_callCount - 1, id, NameFromId(id)));
        _callStarted = true;
    }

    /// <summary>Closes the open call; <paramref name="truncation"/> says how it was cut short, if it was.</summary>
    private void CloseCall(ICollection<ParserEvent> sink, string? truncation)
    {
        bool hadArguments = _state == State.CallArgs;
        StartCall(sink);
        string args = _args.ToString();
        if (string.IsNullOrWhiteSpace(args))
        {
            args = "{}"; // zero-argument call; vLLM does the same
        }

        string? error = truncation;
        if (!hadArguments)
        {
            error = Join(error, "no <|tool_call_argument_begin|> after the tool-call id");
        }

        if (NameFromId(_id.ToString().Trim()).Length == 0)
        {
            error = Join(error, "the tool-call id names no function");
        }

        error = Join(error, ValidateArguments(args));
        sink.Add(new ToolCallEnd(_callCount - 1, args, error));
        _id.Clear();
        _args.Clear();
        _callStarted = false;
    }

    private void EndOutput(ICollection<ParserEvent> sink, FinishReason reason)
    {
        if (reason == FinishReason.Stop && _callCount > 0)
        {
            reason = FinishReason.ToolCalls;
        }

        sink.Add(new End(reason));
        _state = State.Ended;
    }

    /// <summary>
    /// <c>functions.NAME:IDX</c> → NAME: strip the <c>functions.</c> prefix, then cut at the last ':'. Unlike vLLM's
    /// <c>split(":")[0].split(".")[-1]</c> this keeps dotted names (<c>a.b</c>) and names containing ':'.
    /// </summary>
    public static string NameFromId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        var name = id.AsSpan();
        if (name.StartsWith(FunctionsPrefix, StringComparison.Ordinal))
        {
            name = name[FunctionsPrefix.Length..];
        }

        int colon = name.LastIndexOf(':');
        if (colon >= 0)
        {
            name = name[..colon];
        }

        return name.Trim().ToString();
    }

    /// <summary>Null when <paramref name="json"/> is one JSON object (surrounding whitespace allowed).</summary>
    internal static string? ValidateArguments(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object
                ? null
                : $"the arguments are JSON {doc.RootElement.ValueKind}, not an object";
        }
        catch (JsonException e)
        {
            return $"the arguments are not valid JSON: {e.Message}";
        }
    }

    private static string? Join(string? a, string? b) => a is null ? b : b is null ? a : a + "; " + b;
}
