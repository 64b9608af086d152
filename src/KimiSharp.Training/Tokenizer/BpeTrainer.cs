using System.Runtime.InteropServices;
using System.Text;
using KimiSharp.Tokens;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Training.Tokenizer;

/// <summary>What <see cref="BpeTrainer.TrainDetailed"/> produced, with statistics of the training corpus.</summary>
/// <param name="Ranks">Token bytes in rank order: ranks 0–255 are the single bytes, then one token per merge.</param>
/// <param name="DistinctPieces">Distinct pre-tokenized pieces (the BPE "words").</param>
/// <param name="TotalPieces">Pre-tokenized pieces in the corpus, with repetition.</param>
/// <param name="TotalBytes">UTF-8 bytes of ordinary text (special strings excluded).</param>
/// <param name="TokenCount">
/// Tokens of the ordinary text under the trainer's own final segmentation (every merge applied in order). tiktoken's
/// rule over the produced ranks gives this count or fewer (it can also join pairs whose bytes form an existing token).
/// </param>
/// <param name="SpecialCount">Occurrences of special strings cut out of the texts (one token each when encoded).</param>
/// <param name="ReusedMerges">
/// Merges whose pair's bytes already formed a token (reached through another split): they joined the pair into that
/// token and took no rank.
/// </param>
public sealed record BpeTrainingResult(
    IReadOnlyList<byte[]> Ranks, int DistinctPieces, long TotalPieces, long TotalBytes, long TokenCount, long SpecialCount, int ReusedMerges);

/// <summary>
/// Byte-level BPE training with Kimi's pre-tokenization, producing tiktoken ranks for <see cref="TokenizerFiles.Write"/>
/// so that a trained vocabulary loads through <see cref="KimiTokenizer.FromModelDirectory"/> like a K2 checkpoint's.
/// </summary>
/// <remarks>
/// <para>Texts are first cut at special strings (Kimi's named special tokens plus any given), which take no part in
/// training; the rest is split by <see cref="KimiPreTokenization.PreTokenizer"/> into pieces, and distinct pieces are
/// counted. Training starts from the 256 single bytes (rank i = byte i) and repeatedly merges the most frequent
/// adjacent pair of tokens within pieces; ties go to the pair with the lowest (left rank, right rank). A merge's
/// token gets the next rank, so ranks are creation order, which is what tiktoken's "merge the lowest-rank adjacent
/// pair" encoding assumes. A pair whose bytes already form a token (reached by another split) is merged into that
/// token without a new rank, so the ranks never hold duplicate bytes (a safeguard: no corpus tried so far, real or
/// adversarial, produced one). On the test corpora and on 2 MB of this repository's sources, encoding the training
/// text with <see cref="KimiTokenizer"/> over the written files gives exactly <see cref="BpeTrainingResult.TokenCount"/>
/// tokens (plus one per special string).</para>
/// <para>Pieces longer than Kimi's 25,000-character run limit are counted whole here, while the tokenizer encodes
/// such runs in slices; this only affects the statistics of pathological inputs.</para>
/// <para>Pair counts are kept incrementally: each pair knows the pieces it occurs in, a merge only revisits those
/// pieces and adjusts the counts of the neighbouring pairs, and a lazily updated priority queue yields the best pair.
/// Training stops at <see cref="VocabSize"/> ranks, or earlier when no pair occurs at least
/// <see cref="MinPairFrequency"/> times.</para>
/// </remarks>
public sealed class BpeTrainer
{
    private const int ProgressInterval = 64;

    /// <param name="vocabSize">Target number of ranks (at least 256); the special ids come after them.</param>
    /// <param name="specialStrings">Extra strings that are never merged across (Kimi's special tokens always are).</param>
    public BpeTrainer(int vocabSize, IEnumerable<string>? specialStrings = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 256);
        VocabSize = vocabSize;
        var specials = new SortedSet<string>(KimiSpecialTokens.K2Thinking.Select(t => t.Content), StringComparer.Ordinal);
        foreach (var s in specialStrings ?? [])
        {
            ArgumentException.ThrowIfNullOrEmpty(s, nameof(specialStrings));
            specials.Add(s);
        }

        SpecialStrings = specials.ToArray();
        _splitter = new SpecialSplitter(SpecialStrings);
    }

    private readonly SpecialSplitter _splitter;

    /// <summary>
    /// When set, a word's leading space or punctuation is never merged into the word: " Belmark" and "\"Belmark" both
    /// end in the same token "Belmark". A small model then copies a name from prose into a JSON argument by copying a
    /// token, instead of having to learn that two unrelated tokens spell the same word. Costs about one extra token per word.
    /// </summary>
    public bool BareWords { get; init; }

    /// <summary>Target number of ranks.</summary>
    public int VocabSize { get; }

    /// <summary>The strings cut out of the texts before pre-tokenization (ordinal order).</summary>
    public IReadOnlyList<string> SpecialStrings { get; }

    /// <summary>Merges stop when the best pair occurs fewer times than this (default 2; at least 1).</summary>
    public int MinPairFrequency
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            field = value;
        }
    } = 2;

    /// <summary>Trains and returns the ranks (token bytes in rank order).</summary>
    public IReadOnlyList<byte[]> Train(
        IEnumerable<string> texts, IProgress<(int merges, int target)>? progress = null, CancellationToken cancellationToken = default) =>
        TrainDetailed(texts, progress, cancellationToken).Ranks;

    /// <summary>Trains, then writes <c>tiktoken.model</c> and <c>tokenizer_config.json</c> to <paramref name="directory"/>.</summary>
    /// <param name="chatTemplate">Jinja chat template stored in <c>tokenizer_config.json</c> (e.g. K2's), or null.</param>
    public BpeTrainingResult WriteTokenizer(
        string directory, IEnumerable<string> texts, string? chatTemplate = null,
        IProgress<(int merges, int target)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var result = TrainDetailed(texts, progress, cancellationToken);
        WriteTokenizerFiles(directory, result.Ranks, chatTemplate);
        return result;
    }

    /// <summary>
    /// Writes ranks (e.g. from <see cref="Train"/>) as Kimi tokenizer files after checking that they start with the
    /// 256 single bytes and hold no duplicates. Returns the vocabulary size (ranks + 256 special ids).
    /// </summary>
    public static int WriteTokenizerFiles(string directory, IReadOnlyList<byte[]> ranks, string? chatTemplate = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(ranks);
        if (ranks.Count < 256)
        {
            throw new ArgumentException($"A byte-level vocabulary needs at least the 256 single bytes; got {ranks.Count} ranks.", nameof(ranks));
        }

        var seen = new HashSet<string>(ranks.Count, StringComparer.Ordinal);
        for (int rank = 0; rank < ranks.Count; rank++)
        {
            var bytes = ranks[rank] ?? throw new ArgumentException($"Rank {rank} is null.", nameof(ranks));
            if (rank < 256 ? bytes.Length != 1 || bytes[0] != rank : bytes.Length < 2)
            {
                throw new ArgumentException(
                    rank < 256 ? $"Rank {rank} must be the single byte {rank}." : $"Rank {rank} must be at least two bytes long.", nameof(ranks));
            }

            if (!seen.Add(Encoding.Latin1.GetString(bytes)))
            {
                throw new ArgumentException($"Rank {rank} repeats the bytes of an earlier rank.", nameof(ranks));
            }
        }

        return TokenizerFiles.Write(directory, ranks, chatTemplate);
    }

    /// <summary>Trains and returns the ranks with corpus statistics.</summary>
    public BpeTrainingResult TrainDetailed(
        IEnumerable<string> texts, IProgress<(int merges, int target)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var counts = CountPieces(texts, out long totalPieces, out long specialCount, cancellationToken);
        var model = new MergeState(counts, cancellationToken);
        var ranks = model.Run(VocabSize, MinPairFrequency, progress, cancellationToken);
        return new BpeTrainingResult(ranks, model.WordCount, totalPieces, model.TotalBytes, model.TokenCount, specialCount, model.ReusedMerges);
    }

    private Dictionary<string, long> CountPieces(IEnumerable<string> texts, out long totalPieces, out long specialCount, CancellationToken ct)
    {
        // Texts are processed in batches, each batch in parallel with per-thread dictionaries; counts are sums, so the
        // result does not depend on scheduling.
        const int BatchChars = 1 << 22;
        var total = new Dictionary<string, long>(StringComparer.Ordinal);
        long pieces = 0, specials = 0;
        var batch = new List<string>();
        long batchChars = 0;

        void Flush()
        {
            if (batch.Count == 0)
            {
                return;
            }

            var locals = new List<(Dictionary<string, long> Counts, long Pieces, long Specials)>();
            Parallel.ForEach(
                batch,
                new ParallelOptions { CancellationToken = ct },
                () => (Counts: new Dictionary<string, long>(StringComparer.Ordinal), Pieces: 0L, Specials: 0L),
                (text, state, local) =>
                {
                    var lookup = local.Counts.GetAlternateLookup<ReadOnlySpan<char>>();
                    var segments = _splitter.Split(text, out int found);
                    local.Specials += found;
                    foreach (var segment in segments)
                    {
                        var span = segment.Span;
                        foreach (var (offset, length) in KimiPreTokenization.PreTokenizer.PreTokenize(span))
                        {
                            var piece = span.Slice(offset, length);
                            if (BareWords && piece.Length > 1 && !char.IsLetter(piece[0]) && char.IsLetter(piece[1]))
                            {
                                CollectionsMarshal.GetValueRefOrAddDefault(lookup, piece[..1], out _)++;
                                piece = piece[1..];
                                local.Pieces++;
                            }
                            CollectionsMarshal.GetValueRefOrAddDefault(lookup, piece, out _)++;
                            local.Pieces++;
                        }
                    }

                    return local;
                },
                local =>
                {
                    lock (locals)
                    {
                        locals.Add(local);
                    }
                });

            foreach (var (counts, p, s) in locals)
            {
                pieces += p;
                specials += s;
                foreach (var (piece, count) in counts)
                {
                    CollectionsMarshal.GetValueRefOrAddDefault(total, piece, out _) += count;
                }
            }

            batch.Clear();
            batchChars = 0;
        }

        foreach (var text in texts)
        {
            ct.ThrowIfCancellationRequested();
            if (string.IsNullOrEmpty(text))
            {
                continue;
            }

            batch.Add(text);
            batchChars += text.Length;
            if (batchChars >= BatchChars)
            {
                Flush();
            }
        }

        Flush();
        totalPieces = pieces;
        specialCount = specials;
        return total;
    }

    /// <summary>Cuts texts at special strings (longest match first, left to right, like the tokenizer's own scan).</summary>
    private sealed class SpecialSplitter(IReadOnlyList<string> specials)
    {
        private readonly string[] _byLength = specials.OrderByDescending(s => s.Length).ThenBy(s => s, StringComparer.Ordinal).ToArray();
        private readonly System.Buffers.SearchValues<char> _first = System.Buffers.SearchValues.Create(specials.Select(s => s[0]).Distinct().ToArray());

        public List<ReadOnlyMemory<char>> Split(string text, out int found)
        {
            var segments = new List<ReadOnlyMemory<char>>();
            found = 0;
            int start = 0, from = 0;
            while (from < text.Length)
            {
                int rel = text.AsSpan(from).IndexOfAny(_first);
                if (rel < 0)
                {
                    break;
                }

                int at = from + rel;
                string? match = null;
                foreach (var s in _byLength)
                {
                    if (text.AsSpan(at).StartsWith(s, StringComparison.Ordinal))
                    {
                        match = s;
                        break;
                    }
                }

                if (match is null)
                {
                    from = at + 1;
                    continue;
                }

                if (at > start)
                {
                    segments.Add(text.AsMemory(start, at - start));
                }

                found++;
                start = from = at + match.Length;
            }

            if (start < text.Length)
            {
                segments.Add(text.AsMemory(start));
            }

            return segments;
        }
    }

    /// <summary>The words (distinct pieces as token sequences), pair counts, pair → words index and the queue.</summary>
    private sealed class MergeState
    {
        private readonly int[][] _words;
        private readonly int[] _lengths;
        private readonly long[] _wordCounts;
        private readonly Dictionary<long, long> _pairCounts = new();
        private readonly Dictionary<long, List<int>> _where = new();
        private readonly PriorityQueue<long, (long Count, long Pair)> _queue = new(PairOrder.Instance);

        public MergeState(Dictionary<string, long> counts, CancellationToken ct)
        {
            // Distinct pieces as UTF-8, ordered by bytes, so word indices (and everything after) are deterministic.
            var entries = counts.Select(kv => (Bytes: Encoding.UTF8.GetBytes(kv.Key), kv.Value)).ToArray();
            Array.Sort(entries, (x, y) => x.Bytes.AsSpan().SequenceCompareTo(y.Bytes));
            _words = new int[entries.Length][];
            _lengths = new int[entries.Length];
            _wordCounts = new long[entries.Length];
            for (int w = 0; w < entries.Length; w++)
            {
                ct.ThrowIfCancellationRequested();
                var (bytes, count) = entries[w];
                var symbols = new int[bytes.Length];
                for (int i = 0; i < bytes.Length; i++)
                {
                    symbols[i] = bytes[i];
                }

                _words[w] = symbols;
                _lengths[w] = symbols.Length;
                _wordCounts[w] = count;
                TotalBytes += count * bytes.Length;
                for (int i = 0; i + 1 < symbols.Length; i++)
                {
                    long pair = Pair(symbols[i], symbols[i + 1]);
                    CollectionsMarshal.GetValueRefOrAddDefault(_pairCounts, pair, out _) += count;
                    AddWhere(pair, w);
                }
            }

            TokenCount = TotalBytes;
            foreach (var (pair, count) in _pairCounts)
            {
                _queue.Enqueue(pair, (count, pair));
            }
        }

        public int WordCount => _words.Length;

        public long TotalBytes { get; }

        public long TokenCount { get; private set; }

        public int ReusedMerges { get; private set; }

        public List<byte[]> Run(int vocabSize, int minFrequency, IProgress<(int merges, int target)>? progress, CancellationToken ct)
        {
            var ranks = new List<byte[]>(vocabSize);
            var ids = new Dictionary<string, int>(vocabSize, StringComparer.Ordinal);
            for (int b = 0; b < 256; b++)
            {
                ranks.Add([(byte)b]);
                ids.Add(Encoding.Latin1.GetString(ranks[b]), b);
            }

            int target = vocabSize - 256;
            var touched = new HashSet<long>();
            while (ranks.Count < vocabSize && _queue.TryDequeue(out long pair, out var queued))
            {
                long count = _pairCounts.GetValueOrDefault(pair);
                if (count != queued.Count)
                {
                    // Stale: the count fell since this entry was queued (a rise always queues a fresh entry).
                    if (count > 0 && count < queued.Count)
                    {
                        _queue.Enqueue(pair, (count, pair));
                    }

                    continue;
                }

                if (count < minFrequency)
                {
                    break;
                }

                ct.ThrowIfCancellationRequested();
                int left = (int)(pair >> 32), right = (int)pair;
                byte[] bytes = [.. ranks[left], .. ranks[right]];
                string key = Encoding.Latin1.GetString(bytes);
                if (!ids.TryGetValue(key, out int merged))
                {
                    merged = ranks.Count;
                    ranks.Add(bytes);
                    ids.Add(key, merged);
                    int done = ranks.Count - 256;
                    if (progress is not null && (done % ProgressInterval == 0 || ranks.Count == vocabSize))
                    {
                        progress.Report((done, target));
                    }
                }
                else
                {
                    ReusedMerges++;
                }

                Merge(left, right, merged, touched);
            }

            progress?.Report((ranks.Count - 256, target));
            return ranks;
        }

        /// <summary>Replaces every (left, right) in the words holding it by <paramref name="merged"/>, updating counts.</summary>
        private void Merge(int left, int right, int merged, HashSet<long> touched)
        {
            long pair = Pair(left, right);
            var words = _where[pair];
            _where.Remove(pair);
            touched.Clear();
            foreach (int w in words)
            {
                var s = _words[w];
                int len = _lengths[w];
                long c = _wordCounts[w];
                int j = 0, i = 0;
                bool any = false;
                while (i < len)
                {
                    if (i + 1 < len && s[i] == left && s[i + 1] == right)
                    {
                        any = true;
                        if (j > 0)
                        {
                            int p = s[j - 1]; // already rewritten: may be the merged token
                            Add(Pair(p, left), -c);
                            long np = Pair(p, merged);
                            Add(np, c);
                            touched.Add(np);
                            AddWhere(np, w);
                        }

                        if (i + 2 < len)
                        {
                            int q = s[i + 2]; // not yet rewritten (j <= i)
                            Add(Pair(right, q), -c);
                            long nq = Pair(merged, q);
                            Add(nq, c);
                            touched.Add(nq);
                            AddWhere(nq, w);
                        }

                        Add(pair, -c);
                        s[j++] = merged;
                        i += 2;
                        TokenCount -= c;
                    }
                    else
                    {
                        s[j++] = s[i++];
                    }
                }

                if (any)
                {
                    _lengths[w] = j;
                }
            }

            foreach (long t in touched)
            {
                long count = _pairCounts.GetValueOrDefault(t);
                if (count > 0)
                {
                    _queue.Enqueue(t, (count, t));
                }
            }
        }

        private void Add(long pair, long delta)
        {
            ref long count = ref CollectionsMarshal.GetValueRefOrAddDefault(_pairCounts, pair, out _);
            count += delta;
            if (count == 0)
            {
                _pairCounts.Remove(pair);
            }
        }

        private void AddWhere(long pair, int word)
        {
            ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_where, pair, out _);
            list ??= [];
            if (list.Count == 0 || list[^1] != word)
            {
                list.Add(word);
            }
        }

        private static long Pair(int left, int right) => ((long)left << 32) | (uint)right;
    }

    /// <summary>Most frequent first; ties to the lowest (left, right) ranks.</summary>
    private sealed class PairOrder : IComparer<(long Count, long Pair)>
    {
        public static readonly PairOrder Instance = new();

        public int Compare((long Count, long Pair) x, (long Count, long Pair) y)
        {
            int c = y.Count.CompareTo(x.Count);
            return c != 0 ? c : x.Pair.CompareTo(y.Pair);
        }
    }
}
