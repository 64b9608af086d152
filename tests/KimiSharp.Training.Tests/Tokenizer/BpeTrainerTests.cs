using System.Diagnostics;
using System.Text;
using KimiSharp.Tokens.Tokenization;
using KimiSharp.Training.Tokenizer;
using Xunit.Abstractions;

namespace KimiSharp.Training.Tests.Tokenizer;

public sealed class BpeTrainerTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kimisharp-bpe-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private string NewFolder(string name) => Path.Combine(_root, name);

    [Fact]
    public void TrainedTokenizer_LoadsAndRoundTripsHeldOutText()
    {
        var corpus = TrainingCorpus.Generate(seed: 1, count: 2_000);
        var trainer = new BpeTrainer(vocabSize: 1_024);
        string dir = NewFolder("tok");
        var result = trainer.WriteTokenizer(dir, corpus, chatTemplate: "{{ messages }}");

        Assert.Equal(1_024, result.Ranks.Count);
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);
        Assert.Equal(1_024, tokenizer.NumBaseTokens);
        Assert.Equal(1_024 + KimiSpecialTokens.NumReservedSpecialTokens, tokenizer.VocabSize);
        for (int rank = 0; rank < result.Ranks.Count; rank++)
        {
            Assert.Equal(result.Ranks[rank], tokenizer.GetTokenBytes(rank).ToArray());
        }

        foreach (var text in TrainingCorpus.HeldOut())
        {
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, allowSpecial: true)));
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, allowSpecial: false)));
        }

        Assert.Contains("chat_template", File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")), StringComparison.Ordinal);
    }

    [Fact]
    public void SpecialTokens_AreSingleIds_AndNeverLearned()
    {
        var corpus = TrainingCorpus.Generate(seed: 2, count: 1_500);
        var trainer = new BpeTrainer(vocabSize: 800, specialStrings: ["<<custom>>"]);
        corpus.AddRange(Enumerable.Repeat("x<<custom>>y <<custom>>", 500));
        string dir = NewFolder("tok");
        var result = trainer.WriteTokenizer(dir, corpus);
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);

        Assert.Contains("<<custom>>", trainer.SpecialStrings);
        Assert.Contains(KimiSpecialTokens.ImEnd, trainer.SpecialStrings);
        Assert.True(result.SpecialCount >= 1_000);
        Assert.Equal(800 + 2, tokenizer.ImEndId); // K2's offset: [BOS], [EOS], <|im_end|>
        Assert.Equal(800, tokenizer.BosId);
        foreach (var special in new[] { KimiSpecialTokens.ImEnd, KimiSpecialTokens.ImUser, KimiSpecialTokens.ThinkBegin, KimiSpecialTokens.ToolCallBegin })
        {
            var ids = tokenizer.Encode(special, allowSpecial: true);
            Assert.Equal(new[] { tokenizer.TokenToId(special)!.Value }, ids);
            Assert.True(tokenizer.Encode(special, allowSpecial: false).Count > 1);
        }

        // No rank spans a special string, nor crosses its boundary with the text beside it.
        foreach (var bytes in result.Ranks)
        {
            string s = Encoding.UTF8.GetString(bytes);
            Assert.DoesNotContain("im_end", s, StringComparison.Ordinal);
            Assert.DoesNotContain("custom", s, StringComparison.Ordinal);
            Assert.DoesNotContain("|>", s, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void FrequentWords_BecomeSingleTokens()
    {
        var corpus = TrainingCorpus.Generate(seed: 3, count: 3_000);
        string dir = NewFolder("tok");
        new BpeTrainer(vocabSize: 2_048).WriteTokenizer(dir, corpus);
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);

        foreach (var word in new[] { " the", " model", " training", " attention", "Hello", " return", "我们", "人工智能", "😀", " 🚀" })
        {
            var ids = tokenizer.Encode(word, allowSpecial: false);
            Assert.True(ids.Count == 1, $"'{word}' is {ids.Count} tokens");
        }
    }

    [Fact]
    public void Training_IsDeterministic()
    {
        var corpus = TrainingCorpus.Generate(seed: 4, count: 1_500);
        string a = NewFolder("a"), b = NewFolder("b");
        new BpeTrainer(vocabSize: 1_500).WriteTokenizer(a, corpus);
        new BpeTrainer(vocabSize: 1_500).WriteTokenizer(b, corpus.AsEnumerable().Reverse().ToList()); // order must not matter either
        foreach (var file in new[] { "tiktoken.model", "tokenizer_config.json" })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, file)), File.ReadAllBytes(Path.Combine(b, file)));
        }
    }

    [Fact]
    public void EncodingTrainingText_IsNoLongerThanTrainerSegmentation()
    {
        var corpus = TrainingCorpus.Generate(seed: 5, count: 2_000);
        string dir = NewFolder("tok");
        var result = new BpeTrainer(vocabSize: 2_000).WriteTokenizer(dir, corpus);
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);

        long encoded = corpus.Sum(t => (long)tokenizer.Encode(t, allowSpecial: true).Count);
        long trainer = result.TokenCount + result.SpecialCount;
        output.WriteLine($"bytes {result.TotalBytes}, pieces {result.TotalPieces} ({result.DistinctPieces} distinct), trainer {trainer} tokens, tokenizer {encoded}");
        Assert.True(encoded <= trainer, $"tokenizer {encoded} > trainer {trainer}");
        Assert.True(result.TokenCount < result.TotalBytes / 2);
    }

    [Fact]
    public void SmallAlphabet_StressesDuplicateSplits_AndStaysConsistent()
    {
        // Words over {a, b, c} reach the same bytes through different splits; ranks must stay unique and tiktoken's
        // encoding must not be longer than the training segmentation.
        var random = new Random(6);
        var corpus = Enumerable.Range(0, 3_000)
            .Select(_ => string.Join(' ', Enumerable.Range(0, 8).Select(_ => new string(Enumerable.Range(0, random.Next(1, 12)).Select(_ => (char)('a' + random.Next(3))).ToArray()))))
            .ToList();
        var trainer = new BpeTrainer(vocabSize: 1_200) { MinPairFrequency = 1 };
        string dir = NewFolder("tok");
        var result = trainer.WriteTokenizer(dir, corpus);
        Assert.Equal(result.Ranks.Count, result.Ranks.Select(Convert.ToBase64String).Distinct().Count());

        var tokenizer = KimiTokenizer.FromModelDirectory(dir);
        long encoded = corpus.Sum(t => (long)tokenizer.Encode(t, allowSpecial: true).Count);
        output.WriteLine($"ranks {result.Ranks.Count}, reused merges {result.ReusedMerges}, trainer {result.TokenCount}, tokenizer {encoded}");
        Assert.True(encoded <= result.TokenCount, $"tokenizer {encoded} > trainer {result.TokenCount}");
        foreach (var text in corpus.Take(200))
        {
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, allowSpecial: false)));
        }
    }

    [Fact]
    public void MatchesNaiveReferenceTraining()
    {
        var corpus = TrainingCorpus.Generate(seed: 7, count: 150, withMarkers: false);
        var result = new BpeTrainer(vocabSize: 700).TrainDetailed(corpus);
        var (ranks, tokens) = NaiveTrain(corpus, 700, minFrequency: 2);
        Assert.Equal(ranks.Count, result.Ranks.Count);
        for (int i = 0; i < ranks.Count; i++)
        {
            Assert.Equal(ranks[i], result.Ranks[i]);
        }

        Assert.Equal(tokens, result.TokenCount);
    }

    [Fact]
    public void TieBreak_IsLowestPairOfRanks()
    {
        // Pieces: "ab", " ab" ×2, " cd" ×2. (a,b) has 3; then (' ',a), (' ',c), (c,d) and later (' ',ab) tie at 2.
        var ranks = new BpeTrainer(vocabSize: 300).Train(["ab ab ab cd cd"]);
        string[] expected = ["ab", " c", " ab", " cd"];
        Assert.Equal(expected, ranks.Skip(256).Select(r => Encoding.UTF8.GetString(r)).ToArray());
    }

    [Fact]
    public void Stops_WhenNoPairIsFrequentEnough_AndHandlesTrivialInput()
    {
        Assert.Equal(256, new BpeTrainer(vocabSize: 256).Train(TrainingCorpus.Generate(8, 50)).Count);
        Assert.Equal(256, new BpeTrainer(vocabSize: 5_000).Train([]).Count);
        Assert.Equal(256, new BpeTrainer(vocabSize: 5_000).Train(["", "<|im_end|>", "a b c"]).Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(vocabSize: 255));

        string dir = NewFolder("bytes");
        Assert.Equal(512, BpeTrainer.WriteTokenizerFiles(dir, new BpeTrainer(256).Train([])));
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);
        Assert.Equal("héllo 世界", tokenizer.Decode(tokenizer.Encode("héllo 世界", allowSpecial: true)));
        Assert.Throws<ArgumentException>(() => BpeTrainer.WriteTokenizerFiles(NewFolder("bad"), [[1, 2]]));
    }

    [Fact]
    public void ReportsProgress_AndHonoursCancellation()
    {
        var corpus = TrainingCorpus.Generate(seed: 9, count: 800);
        var reports = new List<(int merges, int target)>();
        var ranks = new BpeTrainer(vocabSize: 600).Train(corpus, new SyncProgress(reports.Add));
        Assert.NotEmpty(reports);
        Assert.Equal((ranks.Count - 256, 600 - 256), reports[^1]);
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.First.merges <= p.Second.merges));

        using var cts = new CancellationTokenSource();
        var cancelling = new SyncProgress(p =>
        {
            if (p.merges >= 64)
            {
                cts.Cancel();
            }
        });
        Assert.ThrowsAny<OperationCanceledException>(() => new BpeTrainer(vocabSize: 600).Train(corpus, cancelling, cts.Token));
    }

    [Fact]
    public void StreamsTextFiles_AndJsonLines()
    {
        Directory.CreateDirectory(_root);
        var corpus = TrainingCorpus.Generate(seed: 10, count: 600);
        string whole = string.Join("\n", corpus);
        string textPath = Path.Combine(_root, "corpus.txt");
        File.WriteAllText(textPath, whole);
        var chunks = TrainingTexts.ReadTextFiles([textPath], chunkChars: 4_096).ToList();
        Assert.True(chunks.Count > 5);
        Assert.Equal(whole, string.Concat(chunks));
        var trainer = new BpeTrainer(vocabSize: 700);
        Assert.Equal(trainer.Train([whole]), trainer.Train(chunks));

        string jsonPath = Path.Combine(_root, "corpus.jsonl");
        File.WriteAllLines(jsonPath, corpus.Select(t => System.Text.Json.JsonSerializer.Serialize(new { text = t, id = 1 })).Append("").Append("{\"other\": 1}"));
        Assert.Equal(corpus, TrainingTexts.ReadJsonLines([jsonPath]).ToList());

        File.AppendAllText(jsonPath, "\nnot json\n");
        var e = Assert.Throws<FormatException>(() => TrainingTexts.ReadJsonLines([jsonPath]).ToList());
        Assert.Contains("corpus.jsonl:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Speed_SanityCheck()
    {
        // About 3 MB of text and an 8K vocabulary; reports the time, asserts only the outcome.
        var corpus = TrainingCorpus.Generate(seed: 11, count: 12_000);
        long chars = corpus.Sum(t => (long)t.Length);
        var watch = Stopwatch.StartNew();
        var result = new BpeTrainer(vocabSize: 8_192) { MinPairFrequency = 1 }.TrainDetailed(corpus);
        watch.Stop();
        output.WriteLine($"{chars:N0} chars, {result.TotalBytes:N0} bytes, {result.DistinctPieces:N0} distinct pieces, {result.Ranks.Count} ranks in {watch.Elapsed.TotalSeconds:F2} s");
        Assert.True(result.Ranks.Count > 256);
    }

    /// <summary>Training by recounting every pair after every merge (the textbook algorithm).</summary>
    private static (List<byte[]> Ranks, long Tokens) NaiveTrain(IEnumerable<string> texts, int vocabSize, int minFrequency)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            foreach (var piece in KimiPreTokenization.PreTokenizer.Split(text))
            {
                counts[piece] = counts.GetValueOrDefault(piece) + 1;
            }
        }

        var words = counts.Select(kv => (Symbols: Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b).ToList(), Count: kv.Value)).ToList();
        var ranks = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        while (ranks.Count < vocabSize)
        {
            var pairs = new Dictionary<(int, int), long>();
            foreach (var (symbols, count) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    pairs[(symbols[i], symbols[i + 1])] = pairs.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
                }
            }

            if (pairs.Count == 0)
            {
                break;
            }

            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1).ThenBy(p => p.Key.Item2).First();
            if (best.Value < minFrequency)
            {
                break;
            }

            byte[] bytes = [.. ranks[best.Key.Item1], .. ranks[best.Key.Item2]];
            int id = ranks.FindIndex(r => r.AsSpan().SequenceEqual(bytes));
            if (id < 0)
            {
                id = ranks.Count;
                ranks.Add(bytes);
            }

            foreach (var (symbols, _) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == best.Key.Item1 && symbols[i + 1] == best.Key.Item2)
                    {
                        symbols[i] = id;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }

        return (ranks, words.Sum(w => w.Symbols.Count * w.Count));
    }

    private sealed class SyncProgress(Action<(int merges, int target)> report) : IProgress<(int merges, int target)>
    {
        public void Report((int merges, int target) value) => report(value);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BareWords_keeps_a_word_one_token_sequence_after_a_space_or_a_quote(bool bareWords)
    {
        // Names recur after spaces in prose and after quotes in JSON arguments.
        var lines = new List<string>();
        string[] names = ["Belmark", "Ostdor", "Falarrin", "Yarnes"];
        for (int i = 0; i < 400; i++)
        {
            string name = names[i % names.Length];
            lines.Add($"What is the elevation of {name}? {{\"entity\":\"{name}\",\"attribute\":\"elevation\"}}");
        }
        string dir = NewFolder("bare-" + bareWords);
        new BpeTrainer(vocabSize: 400) { BareWords = bareWords }.WriteTokenizer(dir, lines);
        var tokenizer = KimiTokenizer.FromModelDirectory(dir);

        foreach (string name in names)
        {
            var prose = tokenizer.Encode(" " + name, allowSpecial: false).ToArray();
            var json = tokenizer.Encode("\"" + name, allowSpecial: false).ToArray();
            bool sameWordTokens = prose[1..].SequenceEqual(json[1..]);
            if (bareWords)
            {
                Assert.True(sameWordTokens, $"{name}: prose [{string.Join(",", prose)}] json [{string.Join(",", json)}]");
                Assert.Equal(2, prose.Length);   // the space, then the whole word
            }
            else Assert.Single(prose);           // the default joins the space into the word, as Kimi's tokenizer does
            Assert.Equal(" " + name, tokenizer.Decode(prose));
        }
    }
}
