using System.Text;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// Streaming detokenizer: takes ids one at a time and returns only complete UTF-8 text. A character whose bytes
/// are split across tokens (common for CJK and emoji in byte-level BPE) is held back until its last byte arrives;
/// invalid bytes become U+FFFD as soon as they are known to be invalid, and a sequence still incomplete at
/// <see cref="Flush"/> becomes U+FFFD then. The concatenated output equals
/// <see cref="KimiTokenizer.Decode(IEnumerable{int}, bool)"/> of all ids pushed.
/// Not thread-safe: one instance per stream.
/// </summary>
public sealed class IncrementalDecoder
{
    private readonly KimiTokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;

    // UTF8Encoding's decoder carries an incomplete trailing sequence between calls and replaces invalid bytes
    // with U+FFFD using the same maximal-subpart rule as the one-shot decoder, so streaming and one-shot agree.
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];

    public IncrementalDecoder(KimiTokenizer tokenizer, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Whether bytes of an incomplete character are being held back.</summary>
    public bool HasPendingBytes { get; private set; }

    /// <summary>Adds one token; returns the text it completes (possibly empty).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in the vocabulary.</exception>
    public string Push(int id)
    {
        if (_skipSpecialTokens && _tokenizer.IsSkippable(id))
        {
            return string.Empty;
        }

        return Convert(_tokenizer.GetTokenBytes(id), flush: false);
    }

    /// <summary>Ends the stream: held-back bytes are emitted as U+FFFD. The decoder can then be reused.</summary>
    public string Flush() => Convert([], flush: true);

    /// <summary>Drops held-back bytes without emitting them.</summary>
    public void Reset()
    {
        _utf8.Reset();
        HasPendingBytes = false;
    }

    private string Convert(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _utf8.GetCharCount(bytes, flush);
        if (needed > _chars.Length)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }

        int written = _utf8.GetChars(bytes, _chars, flush);
        // After a non-flushing call the decoder may keep up to 3 bytes; it reports that through its state, which
        // GetCharCount with flush: true reveals without consuming anything.
        HasPendingBytes = !flush && _utf8.GetCharCount([], flush: true) > 0;
        return written == 0 ? string.Empty : new string(_chars, 0, written);
    }
}
