using System.Text.Json.Nodes;
using KimiSharp.Model.Configuration;
using KimiSharp.Tokens;
using KimiSharp.Tokens.Templates;
using KimiSharp.Tokens.Tokenization;
using KimiSharp.Training.Runs;

namespace KimiSharp.Training.Tests.Runs;

/// <summary>Pre-rendered records (text, train_from, weight), packing, and signed loss weights.</summary>
public sealed class PreRenderedDataTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kimi-prerendered-" + Guid.NewGuid().ToString("N"));

    public PreRenderedDataTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, true); }

    private const string Turn = "<|im_user|>user<|im_middle|>hi<|im_end|><|im_assistant|>assistant<|im_middle|>yo<|im_end|>";

    private (TrainingData Data, KimiTokenizer Tokenizer) Load(bool pack, params JsonObject[] records)
    {
        TokenizerFiles.Write(_dir, TokenizerFiles.ByteRanks());
        var tokenizer = KimiTokenizer.FromModelDirectory(_dir);
        string file = Path.Combine(_dir, "data.jsonl");
        File.WriteAllLines(file, records.Select(r => r.ToJsonString()));
        var config = new TrainConfig
        {
            Model = ModelConfig.Parse("""{"model_type":"deepseek_v3","hidden_size":8,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":512,"kv_lora_rank":4,"qk_nope_head_dim":4,"qk_rope_head_dim":2,"v_head_dim":4,"intermediate_size":8,"max_position_embeddings":256,"rope_theta":10000.0,"rms_norm_eps":1e-5}"""),
            ConversationFiles = [file], TokenizerDirectory = _dir, Pack = pack,
        };
        return (new TrainingData(config, tokenizer, ChatTemplate.BuiltInKimiK2Thinking()), tokenizer);
    }

    [Fact]
    public void OnlyAssistantTurnsAfterTrainFromAreTrainedWithTheirWeight()
    {
        string text = Turn + Turn;
        var (data, tokenizer) = Load(false, new JsonObject { ["text"] = text, ["train_from"] = Turn.Length, ["weight"] = -0.5 });
        int turnTokens = tokenizer.Encode(Turn, allowSpecial: true).Count;
        var (inputs, targets, mask) = data.Batch(0, 1, 2 * turnTokens, 1);
        Assert.Equal(tokenizer.Encode(text, allowSpecial: true).ToArray(), inputs);
        // The first turn's answer is context only; the second's "yo<|im_end|>" (3 tokens) is trained at weight −0.5.
        Assert.All(mask.Take(turnTokens - 1), m => Assert.Equal(0f, m));
        Assert.Equal(3, mask.Count(m => m == -0.5f));
        Assert.Equal(3, mask.Count(m => m != 0));
        Assert.Equal(-1, targets[^1]);
    }

    [Fact]
    public void BadRecordsAreNamed()
    {
        var e = Assert.Throws<FormatException>(() => Load(false, new JsonObject { ["text"] = "abc", ["train_from"] = 9 }));
        Assert.Contains("train_from", e.Message);
        e = Assert.Throws<FormatException>(() => Load(false, new JsonObject { ["text"] = "abc", ["weight"] = "x" }));
        Assert.Contains("weight", e.Message);
    }

    [Fact]
    public void PackingFillsRowsWithWholeConversationsAndNeverTargetsAcrossThem()
    {
        var (data, tokenizer) = Load(true, new JsonObject { ["text"] = Turn });
        int n = tokenizer.Encode(Turn, allowSpecial: true).Count;
        var (inputs, targets, _) = data.Batch(3, 1, 3 * n + 2, 1);
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(tokenizer.Encode(Turn, allowSpecial: true).ToArray(), inputs.Skip(k * n).Take(n).ToArray());
            Assert.Equal(-1, targets[k * n + n - 1]);
        }
        Assert.Equal(-1, targets[^1]);
        Assert.Equal(-1, targets[^2]);
    }

    [Fact]
    public void SignedWeightsNormalizeByTheirMagnitude()
    {
        float[] logits = [2f, 0f, 0f, 1f];
        var probs = new float[4];
        var (loss, weight) = TrainOps.CrossEntropy(logits, [0, 0], [1f, -1f], probs, 2, 2);
        float l0 = MathF.Log(1 + MathF.Exp(-2f)), l1 = MathF.Log(1 + MathF.Exp(1f));
        Assert.Equal(2f, weight);
        Assert.Equal((l0 - l1) / 2, loss, 5);
        var dLogits = new float[4];
        TrainOps.CrossEntropyBackward(probs, [0, 0], [1f, -1f], weight, 1f, dLogits, 2, 2);
        Assert.True(dLogits[0] < 0 && dLogits[2] > 0, "a negative weight pushes the target's probability down");
    }

    [Fact]
    public void BucketedBatchesHoldWholeConversationsOfSimilarLengthFromPositionZero()
    {
        var records = Enumerable.Range(1, 40).Select(k => new JsonObject { ["text"] = "<|im_user|>user<|im_middle|>" + new string('x', k) + "<|im_end|><|im_assistant|>assistant<|im_middle|>ok<|im_end|>" }).ToArray();
        var (data, tokenizer) = Load(false, records);
        for (int step = 0; step < 20; step++)
        {
            var (inputs, targets, mask, rows, seq) = data.BucketBatch(step, 200, 64, 7);
            Assert.Equal(rows * seq, inputs.Length);
            Assert.True(rows * seq <= 200 || rows == 1);
            int user = tokenizer.TokenToId("<|im_user|>")!.Value;
            int longest = 0, shortest = int.MaxValue;
            for (int r = 0; r < rows; r++)
            {
                Assert.Equal(user, inputs[r * seq]); // each row is one conversation starting at position 0
                Assert.Equal(1, inputs.Skip(r * seq).Take(seq).Count(t => t == user));
                int length = Enumerable.Range(0, seq).Count(i => targets[r * seq + i] >= 0) + 1;
                longest = Math.Max(longest, length); shortest = Math.Min(shortest, length);
                Assert.Equal(3, Enumerable.Range(0, seq).Count(i => mask[r * seq + i] != 0)); // "ok<|im_end|>" after <|im_middle|>
            }
            Assert.True(longest - shortest <= rows, "rows are neighbours in length");
            var again = data.BucketBatch(step, 200, 64, 7);
            Assert.Equal(inputs, again.Inputs);
            Assert.Equal(mask, again.Mask);
        }
    }
}
