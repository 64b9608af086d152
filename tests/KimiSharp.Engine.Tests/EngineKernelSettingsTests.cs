using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Engine.Tests;

/// <summary>
/// The engine runs the forward pass on its own thread; the model's kernel settings must come along. (They used to be a
/// flag of the thread that loaded the model, so <c>generate --int8</c> decoded repacked weights on the float path.)
/// </summary>
public sealed class EngineKernelSettingsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-engine-kernels-").FullName;

    public EngineKernelSettingsTests() =>
        // INT4 on every linear layer, so int8 activations reach attention, the dense layer and the experts.
        RandomCheckpoint.Write(_directory, new RandomCheckpointOptions
        {
            VocabSize = 300, HiddenSize = 128, NumHiddenLayers = 3, MaxPositionEmbeddings = 256,
            Format = CheckpointFormat.Int4, Int4AllLinears = true, Seed = 33,
        });

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>The logprob of each of <paramref name="tokens"/> after the prompt and the ones before it, as the sampler reports it.</summary>
    private static float[] Logprobs(KimiModel model, int[] prompt, IReadOnlyList<int> tokens)
    {
        var cache = model.CreateCache();
        var logits = new float[model.Config.VocabSize];
        var result = new float[tokens.Count];
        model.Forward(prompt, cache, logits, lastOnly: true);
        for (int i = 0; i < tokens.Count; i++)
        {
            float max = float.NegativeInfinity;
            foreach (float v in logits) max = Math.Max(max, v);
            double sumExp = 0;
            foreach (float v in logits) sumExp += Math.Exp(v - max);
            result[i] = logits[tokens[i]] - (max + (float)Math.Log(sumExp));
            if (i + 1 < tokens.Count) model.Forward([tokens[i]], cache, logits);
        }
        return result;
    }

    [Fact]
    public async Task The_engine_thread_decodes_with_the_models_int8_setting()
    {
        var kernels = new KernelSettings { Activations = ActivationPrecision.Int8, MaxThreads = 2 };
        using var int8 = KimiModel.Load(_directory, new KimiModelLoadOptions { Kernels = kernels });
        using var exact = KimiModel.Load(_directory);
        var prompt = Enumerable.Range(0, 23).Select(i => (i * 41 + 7) % 300).ToArray();

        var tokens = new List<int>();
        var reported = new List<float>();
        await using (var engine = new GenerationEngine(int8, new EngineOptions { PrefillChunkTokens = 8 }))
            await foreach (var e in engine.GenerateAsync(prompt, new GenerationOptions { Temperature = 0, MaxTokens = 10, Logprobs = true }))
                if (e is TokenGenerated t) { tokens.Add(t.Token); reported.Add(t.Logprob); }
        Assert.Equal(10, tokens.Count);

        // Bit for bit what the int8 model computes on this thread, and measurably not the float32 path's numbers.
        Assert.Equal(Logprobs(int8, prompt, tokens), reported.ToArray());
        var float32 = Logprobs(exact, prompt, tokens);
        double largest = reported.Select((p, i) => Math.Abs(p - float32[i])).Max();
        Assert.True(largest > 1e-4, $"int8 and float32 logprobs differ by at most {largest:E2}: the engine did not run int8 activations");
    }
}
