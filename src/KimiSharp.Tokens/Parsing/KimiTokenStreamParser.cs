using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Parsing;

/// <summary>
/// Parses generated token ids directly: each id goes through an <see cref="IncrementalDecoder"/> (so a character
/// split across tokens is never cut) and the completed text into a <see cref="KimiOutputParser"/>. Special ids
/// decode to their literal names, which is what the parser's markers are.
/// </summary>
public sealed class KimiTokenStreamParser
{
    private readonly IncrementalDecoder _decoder;
    private readonly int? _eosId;

    public KimiTokenStreamParser(KimiTokenizer tokenizer, KimiOutputParserOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _decoder = tokenizer.CreateIncrementalDecoder();
        _eosId = tokenizer.EosId;
        Parser = new KimiOutputParser(options);
    }

    /// <summary>The text parser fed by this adapter.</summary>
    public KimiOutputParser Parser { get; }

    /// <summary>Consumes one generated id. <c>[EOS]</c> ends the output like <c>&lt;|im_end|&gt;</c>.</summary>
    public IReadOnlyList<ParserEvent> Feed(int tokenId)
    {
        var events = new List<ParserEvent>();
        Feed(tokenId, events);
        return events;
    }

    /// <inheritdoc cref="Feed(int)"/>
    public void Feed(int tokenId, ICollection<ParserEvent> sink)
    {
        if (Parser.IsEnded)
        {
            return;
        }

        if (tokenId == _eosId)
        {
            Finish(sink, FinishReason.Stop);
            return;
        }

        string text = _decoder.Push(tokenId);
        if (text.Length > 0)
        {
            Parser.Feed(text, sink);
        }
    }

    /// <summary>Ends the stream: flushes held-back bytes (as U+FFFD) and finishes the parser.</summary>
    public IReadOnlyList<ParserEvent> Finish(FinishReason? reason = null)
    {
        var events = new List<ParserEvent>();
        Finish(events, reason);
        return events;
    }

    /// <inheritdoc cref="Finish(FinishReason?)"/>
    public void Finish(ICollection<ParserEvent> sink, FinishReason? reason = null)
    {
        string tail = _decoder.Flush();
        if (tail.Length > 0)
        {
            Parser.Feed(tail, sink);
        }

        Parser.Finish(sink, reason);
    }
}
