using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// The mergeable ranks of a tiktoken BPE file (<c>tiktoken.model</c>, <c>*.tiktoken</c>): one line per token,
/// <c>base64(token bytes) SP rank</c>. Validated strictly, so a corrupt file fails at load with the line named
/// instead of producing a tokenizer that silently mis-encodes.
/// </summary>
/// <remarks>
/// Rules (tiktoken's <c>load_tiktoken_bpe</c> plus the checks it leaves out): blank lines are skipped; every other
/// line has exactly two whitespace-separated fields; the first is strict base64 of a non-empty byte string; the
/// second a non-negative decimal integer; no rank and no byte string may repeat; and the ranks must be exactly
/// 0..N-1, because Kimi numbers its special tokens from N (<c>num_base_tokens = len(mergeable_ranks)</c>).
/// </remarks>
public sealed class TiktokenVocabulary
{
    private readonly byte[] _blob;      // all token bytes, in rank order
    private readonly int[] _offsets;    // token r is _blob[_offsets[r].._offsets[r + 1]]

    private TiktokenVocabulary(byte[] blob, int[] offsets, string sourceName)
    {
        _blob = blob;
        _offsets = offsets;
        SourceName = sourceName;
    }

    /// <summary>Number of ranks (Kimi's <c>num_base_tokens</c>).</summary>
    public int Count => _offsets.Length - 1;

    /// <summary>File path or stream name, as used in error messages.</summary>
    public string SourceName { get; }

    /// <summary>The bytes of the token with rank <paramref name="rank"/>.</summary>
    public ReadOnlySpan<byte> GetBytes(int rank)
    {
        if ((uint)rank >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank must be in [0, {Count}).");
        }

        return _blob.AsSpan(_offsets[rank], _offsets[rank + 1] - _offsets[rank]);
    }

    /// <summary>
    /// Writes the ranks back in canonical tiktoken form (<c>base64 SP rank LF</c>, rank order). The BPE engine is
    /// built from this rather than from the original bytes so that it sees exactly what was validated, whatever
    /// line endings or spacing the file used.
    /// </summary>
    public MemoryStream ToCanonicalStream()
    {
        var output = new MemoryStream(_blob.Length * 2 + Count * 8);
        Span<byte> rankText = stackalloc byte[16];
        byte[] b64 = new byte[Base64.GetMaxEncodedToUtf8Length(MaxTokenLength())];
        for (int rank = 0; rank < Count; rank++)
        {
            Base64.EncodeToUtf8(GetBytes(rank), b64, out _, out int written);
            output.Write(b64, 0, written);
            output.WriteByte((byte)' ');
            Utf8Formatter.TryFormat(rank, rankText, out int digits);
            output.Write(rankText[..digits]);
            output.WriteByte((byte)'\n');
        }

        output.Position = 0;
        return output;
    }

    private int MaxTokenLength()
    {
        int max = 1;
        for (int r = 0; r < Count; r++)
        {
            max = Math.Max(max, _offsets[r + 1] - _offsets[r]);
        }

        return max;
    }

    /// <summary>Loads and validates a ranks file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFormatException">The file is malformed (message names the file and line).</exception>
    public static TiktokenVocabulary Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"tiktoken ranks file '{path}' does not exist.", path);
        }

        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Loads and validates ranks from a stream (read to its end, not disposed).</summary>
    /// <param name="sourceName">Name used in error messages.</param>
    public static TiktokenVocabulary Load(Stream stream, string sourceName = "<stream>")
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return Parse(copy.ToArray(), sourceName);
    }

    private static TiktokenVocabulary Parse(byte[] file, string source)
    {
        var entries = new List<(int Start, int Length, int Rank, int Line)>(capacity: Math.Max(16, file.Length / 12));
        var blob = new ArrayBufferWriter<byte>(Math.Max(256, file.Length / 2));
        int lineNumber = 0;
        int pos = 0;
        while (pos < file.Length)
        {
            lineNumber++;
            int nl = file.AsSpan(pos).IndexOf((byte)'\n');
            int end = nl < 0 ? file.Length : pos + nl;
            var line = file.AsSpan(pos, end - pos);
            pos = end + 1;
            if (line.Length > 0 && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            if (line.IsEmpty)
            {
                continue; // tiktoken skips empty lines
            }

            ParseLine(line, source, lineNumber, blob, entries);
        }

        if (entries.Count == 0)
        {
            throw new TokenizerFormatException(source, null, "the file holds no ranks.");
        }

        return Build(blob.WrittenSpan, entries, source);
    }

    private static void ParseLine(
        ReadOnlySpan<byte> line, string source, int lineNumber,
        ArrayBufferWriter<byte> blob, List<(int Start, int Length, int Rank, int Line)> entries)
    {
        // Exactly two fields separated by ASCII whitespace (Python's str.split()).
        Span<Range> fields = stackalloc Range[3];
        int count = SplitFields(line, fields);
        if (count == 1)
        {
            throw new TokenizerFormatException(source, lineNumber, "missing rank: expected '<base64 token> <rank>'.");
        }

        if (count != 2)
        {
            throw new TokenizerFormatException(source, lineNumber,
                count == 0 ? "line is blank but not empty." : "expected exactly two fields '<base64 token> <rank>'.");
        }

        var b64 = line[fields[0]];
        var rankText = line[fields[1]];
        int maxLen = Base64.GetMaxDecodedFromUtf8Length(b64.Length);
        var dest = blob.GetSpan(Math.Max(1, maxLen));
        var status = Base64.DecodeFromUtf8(b64, dest, out int consumed, out int written, isFinalBlock: true);
        if (status != OperationStatus.Done || consumed != b64.Length)
        {
            throw new TokenizerFormatException(source, lineNumber,
                $"'{Printable(b64)}' is not valid base64.");
        }

        if (written == 0)
        {
            throw new TokenizerFormatException(source, lineNumber, "token decodes to an empty byte string.");
        }

        if (!Utf8Parser.TryParse(rankText, out int rank, out int rankConsumed) || rankConsumed != rankText.Length || rank < 0)
        {
            throw new TokenizerFormatException(source, lineNumber,
                $"rank '{Printable(rankText)}' is not a non-negative integer.");
        }

        entries.Add((blob.WrittenCount, written, rank, lineNumber));
        blob.Advance(written);
    }

    private static TiktokenVocabulary Build(
        ReadOnlySpan<byte> bytes, List<(int Start, int Length, int Rank, int Line)> entries, string source)
    {
        int n = entries.Count;
        var lineOfRank = new int[n];
        var byRank = new int[n]; // entry index per rank
        foreach (var (i, e) in entries.Index())
        {
            if (e.Rank >= n)
            {
                throw new TokenizerFormatException(source, e.Line,
                    $"rank {e.Rank} is out of range: a file of {n} tokens must use ranks 0..{n - 1} exactly once each.");
            }

            if (lineOfRank[e.Rank] != 0)
            {
                throw new TokenizerFormatException(source, e.Line,
                    $"duplicate rank {e.Rank} (first used on line {lineOfRank[e.Rank]}).");
            }

            lineOfRank[e.Rank] = e.Line;
            byRank[e.Rank] = i;
        }

        // Lay the tokens out in rank order and reject a byte string that appears twice (tiktoken would keep one
        // silently and leave a hole in the id space).
        var blob = new byte[bytes.Length];
        var offsets = new int[n + 1];
        var seen = new Dictionary<ByteKey, int>(n, ByteKey.Comparer);
        int at = 0;
        for (int rank = 0; rank < n; rank++)
        {
            var e = entries[byRank[rank]];
            bytes.Slice(e.Start, e.Length).CopyTo(blob.AsSpan(at));
            offsets[rank] = at;
            var key = new ByteKey(blob, at, e.Length);
            if (!seen.TryAdd(key, e.Line))
            {
                int first = seen[key];
                int later = Math.Max(first, e.Line);
                throw new TokenizerFormatException(source, later,
                    $"duplicate token bytes (same as line {Math.Min(first, e.Line)}).");
            }

            at += e.Length;
        }

        offsets[n] = at;
        return new TiktokenVocabulary(blob, offsets, source);
    }

    private static int SplitFields(ReadOnlySpan<byte> line, Span<Range> fields)
    {
        int count = 0;
        int i = 0;
        while (i < line.Length)
        {
            while (i < line.Length && IsAsciiSpace(line[i]))
            {
                i++;
            }

            if (i == line.Length)
            {
                break;
            }

            int start = i;
            while (i < line.Length && !IsAsciiSpace(line[i]))
            {
                i++;
            }

            if (count == fields.Length)
            {
                return count + 1; // more fields than we care to record
            }

            fields[count++] = start..i;
        }

        return count;
    }

    private static bool IsAsciiSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\v' or (byte)'\f' or (byte)'\r';

    private static string Printable(ReadOnlySpan<byte> s)
    {
        var text = Encoding.UTF8.GetString(s.Length > 40 ? s[..40] : s);
        return s.Length > 40 ? text + "…" : text;
    }

    private readonly struct ByteKey(byte[] array, int start, int length)
    {
        public static readonly IEqualityComparer<ByteKey> Comparer = new KeyComparer();

        private ReadOnlySpan<byte> Span => array.AsSpan(start, length);

        private sealed class KeyComparer : IEqualityComparer<ByteKey>
        {
            public bool Equals(ByteKey x, ByteKey y) => x.Span.SequenceEqual(y.Span);

            public int GetHashCode(ByteKey k)
            {
                var h = new HashCode();
                h.AddBytes(k.Span);
                return h.ToHashCode();
            }
        }
    }
}
