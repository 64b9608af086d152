using System.Buffers;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// Kimi K2's tokenizer: tiktoken BPE over <c>tiktoken.model</c>, Kimi's pre-tokenization pattern, and 256
/// special ids after the ranks. Byte-pair merging is Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>;
/// this class adds what Kimi does around it (special-token recognition, long-input splitting, byte-exact decoding).
/// Thread-safe after construction.
/// </summary>
/// <remarks>
/// Special tokens are handled here and never given to the <see cref="TiktokenTokenizer"/>: it maps any
/// pre-tokenized piece that equals a special string to the special id, which would make
/// <c>allowSpecial: false</c> unreliable for specials the pattern keeps whole.
/// </remarks>
public sealed class KimiTokenizer
{
    /// <summary>tokenization_kimi.py: <c>TIKTOKEN_MAX_ENCODE_CHARS</c> (code points).</summary>
    private const int MaxEncodeChars = 400_000;

    /// <summary>tokenization_kimi.py: <c>MAX_NO_WHITESPACES_CHARS</c> (code points).</summary>
    private const int MaxRunChars = 25_000;

    private readonly TiktokenTokenizer _bpe;
    private readonly TiktokenVocabulary _ranks;
    private readonly SpecialToken?[] _specials;        // index: id - NumBaseTokens
    private readonly byte[]?[] _specialBytes;          // UTF-8 of each special's content
    private readonly Dictionary<string, int> _specialIds;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _specialLookup;
    private readonly SearchValues<char>? _specialFirstChars;
    private readonly int[] _specialLengths;            // distinct lengths, longest first
    private readonly bool _splitLongInputs;

    private KimiTokenizer(TiktokenVocabulary ranks, IEnumerable<SpecialToken> named, KimiTokenizerOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.NumReservedSpecialTokens);
        _ranks = ranks;
        PreTokenizer = options.PreTokenizer ?? KimiPreTokenization.PreTokenizer;
        _splitLongInputs = options.SplitLongInputs;
        int numBase = ranks.Count;

        var byId = new SortedDictionary<int, SpecialToken>();
        foreach (var token in named)
        {
            if (token.Id < numBase)
            {
                throw new ArgumentException(
                    $"Special token '{token.Content}' has id {token.Id}, which is an ordinary rank (the vocabulary has {numBase} ranks).");
            }

            if (!byId.TryAdd(token.Id, token))
            {
                throw new ArgumentException($"Two special tokens have id {token.Id}.");
            }
        }

        int maxId = byId.Count > 0 ? byId.Keys.Max() : -1;
        VocabSize = Math.Max(numBase + options.NumReservedSpecialTokens, maxId + 1);
        _specials = new SpecialToken?[VocabSize - numBase];
        _specialBytes = new byte[]?[VocabSize - numBase];
        _specialIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = numBase; id < VocabSize; id++)
        {
            var token = byId.GetValueOrDefault(id)
                ?? (id < numBase + options.NumReservedSpecialTokens ? new SpecialToken(id, KimiSpecialTokens.ReservedName(id), true) : null);
            if (token is null)
            {
                continue; // a gap between explicitly numbered specials: the id decodes to nothing valid
            }

            if (!_specialIds.TryAdd(token.Content, id))
            {
                throw new ArgumentException($"Special token '{token.Content}' is used for ids {_specialIds[token.Content]} and {id}.");
            }

            _specials[id - numBase] = token;
            _specialBytes[id - numBase] = Encoding.UTF8.GetBytes(token.Content);
        }

        _specialLookup = _specialIds.GetAlternateLookup<ReadOnlySpan<char>>();
        _specialLengths = _specialIds.Keys.Select(k => k.Length).Distinct().OrderDescending().ToArray();
        _specialFirstChars = _specialIds.Count > 0 ? SearchValues.Create(_specialIds.Keys.Select(k => k[0]).Distinct().ToArray()) : null;
        SpecialTokens = _specials.Where(s => s is not null).Select(s => s!).ToArray();

        using var canonical = ranks.ToCanonicalStream();
        _bpe = TiktokenTokenizer.Create(canonical, PreTokenizer, normalizer: null, specialTokens: null);

        BosId = Resolve(options.BosToken);
        EosId = Resolve(options.EosToken);
        PadId = Resolve(options.PadToken);
        UnkId = Resolve(options.UnkToken);
    }

    /// <summary>Number of BPE ranks (<c>num_base_tokens</c>); the first special id.</summary>
    public int NumBaseTokens => _ranks.Count;

    /// <summary>Ranks plus special ids (163,840 for K2): the embedding's row count.</summary>
    public int VocabSize { get; }

    /// <summary>Every special token (named and reserved), in id order.</summary>
    public IReadOnlyList<SpecialToken> SpecialTokens { get; }

    /// <summary>The pre-tokenizer splitting ordinary text into BPE pieces.</summary>
    public PreTokenizer PreTokenizer { get; }

    public int? BosId { get; }

    public int? EosId { get; }

    public int? PadId { get; }

    public int? UnkId { get; }

    /// <summary>Id of <c>&lt;|im_end|&gt;</c>, the end of every message and the practical stop token, if present.</summary>
    public int? ImEndId => TokenToId(KimiSpecialTokens.ImEnd);

    /// <summary>
    /// Loads a Kimi model folder: <c>tiktoken.model</c> (ranks) and <c>tokenizer_config.json</c> (special-token names
    /// from <c>added_tokens_decoder</c>; bos/eos/pad/unk).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">A required file is missing (message names the folder).</exception>
    /// <exception cref="TokenizerFormatException">A file is malformed (message names the file and line).</exception>
    public static KimiTokenizer FromModelDirectory(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Model folder '{directory}' does not exist.");
        }

        string ranksPath = Path.Combine(directory, "tiktoken.model");
        if (!File.Exists(ranksPath))
        {
            throw new FileNotFoundException(
                $"Model folder '{directory}' has no tiktoken.model (Kimi's tokenizer ranks file).", ranksPath);
        }

        string configPath = Path.Combine(directory, "tokenizer_config.json");
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException(
                $"Model folder '{directory}' has no tokenizer_config.json (needed for the special-token names).", configPath);
        }

        var config = KimiTokenizerConfig.Load(configPath);
        var ranks = TiktokenVocabulary.Load(ranksPath);
        var options = new KimiTokenizerOptions
        {
            SourceName = ranksPath,
            // tokenization_kimi.py defaults when the config names none.
            BosToken = config.BosToken ?? KimiSpecialTokens.Bos,
            EosToken = config.EosToken ?? KimiSpecialTokens.Eos,
            PadToken = config.PadToken,
            UnkToken = config.UnkToken,
        };

        KimiTokenizer tokenizer;
        try
        {
            tokenizer = new KimiTokenizer(ranks, config.AddedTokens, options);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerFormatException(configPath, null, e.Message, e);
        }

        // A config that names a bos/eos/pad/unk token must also define it; a silent null id would surface much later.
        // (The [BOS]/[EOS] fallbacks used when the config names none are optional.)
        foreach (var (field, name, id) in new[]
                 {
                     ("bos_token", config.BosToken, tokenizer.BosId), ("eos_token", config.EosToken, tokenizer.EosId),
                     ("pad_token", config.PadToken, tokenizer.PadId), ("unk_token", config.UnkToken, tokenizer.UnkId),
                 })
        {
            if (name is not null && id is null)
            {
                throw new TokenizerFormatException(configPath, null, $"{field} '{name}' is not one of the special tokens.");
            }
        }

        return tokenizer;
    }

    /// <summary>Builds a tokenizer from a ranks stream and special tokens keyed by id (all flagged special).</summary>
    public static KimiTokenizer FromRanks(Stream ranks, IReadOnlyDictionary<int, string>? specialTokens = null, KimiTokenizerOptions? options = null) =>
        FromRanks(ranks, (specialTokens ?? new Dictionary<int, string>()).Select(kv => new SpecialToken(kv.Key, kv.Value)), options);

    /// <summary>Builds a tokenizer from a ranks stream (any tiktoken vocabulary) and special tokens.</summary>
    /// <exception cref="TokenizerFormatException">The ranks are malformed.</exception>
    /// <exception cref="ArgumentException">The special tokens collide with ranks or with each other.</exception>
    public static KimiTokenizer FromRanks(Stream ranks, IEnumerable<SpecialToken> specialTokens, KimiTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(specialTokens);
        options ??= new KimiTokenizerOptions();
        return new KimiTokenizer(TiktokenVocabulary.Load(ranks, options.SourceName), specialTokens, options);
    }

    /// <summary>Builds a tokenizer from already loaded ranks.</summary>
    public static KimiTokenizer FromVocabulary(TiktokenVocabulary ranks, IEnumerable<SpecialToken> specialTokens, KimiTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(specialTokens);
        return new KimiTokenizer(ranks, specialTokens, options ?? new KimiTokenizerOptions());
    }

    /// <summary>Encodes <paramref name="text"/>.</summary>
    /// <param name="allowSpecial">
    /// True: literal special-token strings become their ids (Kimi encodes with <c>allowed_special="all"</c>, so
    /// this is what the model saw in training for rendered prompts). False: they are encoded as ordinary text;
    /// use it for untrusted content that must not inject control tokens.
    /// </param>
    public IReadOnlyList<int> Encode(string text, bool allowSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        EncodeTo(text, allowSpecial, ids);
        return ids;
    }

    /// <summary>Encodes <paramref name="text"/>, appending the ids to <paramref name="output"/>.</summary>
    public void EncodeTo(ReadOnlySpan<char> text, bool allowSpecial, List<int> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (!_splitLongInputs || text.Length <= MaxRunChars)
        {
            // A run longer than the limit needs more code points than this text has UTF-16 units.
            EncodeChunk(text, allowSpecial, output);
            return;
        }

        // tokenization_kimi.py: 400k-code-point chunks, each split into runs of at most 25k whitespace or
        // non-whitespace code points; each piece is encoded on its own (so a special token is only recognized
        // within one piece, exactly as in Kimi).
        int chunkStart = 0;
        while (chunkStart < text.Length)
        {
            int chunkEnd = AdvanceCodePoints(text, chunkStart, MaxEncodeChars);
            var chunk = text[chunkStart..chunkEnd];
            int sliceStart = 0, runLength = 0;
            bool runIsSpace = false;
            for (int i = 0; i < chunk.Length;)
            {
                int width = char.IsHighSurrogate(chunk[i]) && i + 1 < chunk.Length && char.IsLowSurrogate(chunk[i + 1]) ? 2 : 1;
                bool isSpace = width == 1 && IsPythonSpace(chunk[i]);
                if (i == 0)
                {
                    runIsSpace = isSpace;
                    runLength = 1;
                }
                else if (isSpace != runIsSpace)
                {
                    runIsSpace = isSpace;
                    runLength = 1;
                }
                else if (++runLength > MaxRunChars)
                {
                    EncodeChunk(chunk[sliceStart..i], allowSpecial, output);
                    sliceStart = i;
                    runLength = 1;
                }

                i += width;
            }

            EncodeChunk(chunk[sliceStart..], allowSpecial, output);
            chunkStart = chunkEnd;
        }
    }

    /// <summary>Token bytes concatenated, then UTF-8 decoded with U+FFFD for invalid sequences (as Kimi's decode).</summary>
    /// <param name="skipSpecialTokens">Drop special ids flagged <c>special</c> (tool-call markers are kept).</param>
    /// <exception cref="ArgumentOutOfRangeException">An id is not in the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        DecodeTo(ids, skipSpecialTokens, buffer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>The concatenated token bytes (not necessarily valid UTF-8).</summary>
    public byte[] DecodeBytes(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        DecodeTo(ids, skipSpecialTokens, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The bytes of one token (a special token's bytes are the UTF-8 of its name).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in the vocabulary.</exception>
    public ReadOnlySpan<byte> GetTokenBytes(int id)
    {
        if ((uint)id < (uint)_ranks.Count)
        {
            return _ranks.GetBytes(id);
        }

        int s = id - _ranks.Count;
        if ((uint)s < (uint)_specialBytes.Length && _specialBytes[s] is { } bytes)
        {
            return bytes;
        }

        throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id {id} is not in the vocabulary (size {VocabSize}).");
    }

    /// <summary>Whether <paramref name="id"/> is a special id that <c>skipSpecialTokens</c> drops.</summary>
    public bool IsSkippable(int id) => SpecialAt(id) is { Special: true };

    /// <summary>Whether <paramref name="id"/> is one of the special ids (at or above <see cref="NumBaseTokens"/>).</summary>
    public bool IsSpecial(int id) => SpecialAt(id) is not null;

    /// <summary>The id of a special token string, or null.</summary>
    public int? TokenToId(string specialToken) =>
        _specialIds.TryGetValue(specialToken, out int id) ? id : null;

    /// <summary>The name of a special id, or null for an ordinary rank or an unknown id.</summary>
    public string? IdToToken(int id) => SpecialAt(id)?.Content;

    /// <summary>A streaming detokenizer over this vocabulary.</summary>
    public IncrementalDecoder CreateIncrementalDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    private SpecialToken? SpecialAt(int id)
    {
        int s = id - _ranks.Count;
        return (uint)s < (uint)_specials.Length ? _specials[s] : null;
    }

    private int? Resolve(string? token) => token is not null && _specialIds.TryGetValue(token, out int id) ? id : null;

    private void DecodeTo(IEnumerable<int> ids, bool skipSpecialTokens, ArrayBufferWriter<byte> buffer)
    {
        ArgumentNullException.ThrowIfNull(ids);
        foreach (int id in ids)
        {
            if (skipSpecialTokens && IsSkippable(id))
            {
                continue;
            }

            buffer.Write(GetTokenBytes(id));
        }
    }

    /// <summary>tiktoken's encode of one piece: ordinary text between (allowed) special tokens.</summary>
    private void EncodeChunk(ReadOnlySpan<char> text, bool allowSpecial, List<int> output)
    {
        if (!allowSpecial || _specialFirstChars is null)
        {
            EncodeOrdinary(text, output);
            return;
        }

        int start = 0, from = 0;
        while (from < text.Length)
        {
            int rel = text[from..].IndexOfAny(_specialFirstChars);
            if (rel < 0)
            {
                break;
            }

            int at = from + rel;
            if (TryMatchSpecial(text[at..], out int id, out int length))
            {
                EncodeOrdinary(text[start..at], output);
                output.Add(id);
                start = from = at + length;
            }
            else
            {
                from = at + 1;
            }
        }

        EncodeOrdinary(text[start..], output);
    }

    /// <summary>Longest special token that starts <paramref name="text"/>.</summary>
    private bool TryMatchSpecial(ReadOnlySpan<char> text, out int id, out int length)
    {
        foreach (int len in _specialLengths)
        {
            if (len <= text.Length && _specialLookup.TryGetValue(text[..len], out id))
            {
                length = len;
                return true;
            }
        }

        id = length = 0;
        return false;
    }

    private void EncodeOrdinary(ReadOnlySpan<char> text, List<int> output)
    {
        if (text.IsEmpty)
        {
            return;
        }

        var ids = _bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false);
        for (int i = 0; i < ids.Count; i++)
        {
            output.Add(ids[i]);
        }
    }

    private static int AdvanceCodePoints(ReadOnlySpan<char> text, int start, int count)
    {
        int i = start;
        while (count-- > 0 && i < text.Length)
        {
            i += char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
        }

        return i;
    }

    /// <summary>Python's <c>str.isspace</c> for a BMP character: .NET's whitespace plus U+001C..U+001F.</summary>
    private static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';
}
