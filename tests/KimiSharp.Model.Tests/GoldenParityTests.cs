using KimiSharp.Model.Layers;
using KimiSharp.Model.Tests.Reference;

namespace KimiSharp.Model.Tests;

/// <summary>The engine against the independent float64 reference logits in shared/golden.</summary>
public sealed class GoldenParityTests
{
    public const double Tolerance = 1e-3;

    public static TheoryData<string> Goldens() => new() { "tiny-a-bf16", "tiny-a-int4", "tiny-a-fp8" };

    [Theory]
    [MemberData(nameof(Goldens))]
    public void Full_sequence_logits_match_golden(string name)
    {
        var golden = GoldenCase.Load(name);
        using var model = KimiModel.Load(golden.Directory);
        var logits = model.Logits(golden.Tokens);
        double error = golden.RelativeError(Array.ConvertAll(logits, v => (double)v));
        Assert.True(error <= Tolerance, $"{name}: relative error {error:E3} > {Tolerance}");
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void Incremental_decoding_through_the_kv_cache_matches_golden(string name)
    {
        var golden = GoldenCase.Load(name);
        using var model = KimiModel.Load(golden.Directory);
        int vocab = model.Config.VocabSize;
        var cache = model.CreateCache(initialCapacity: 1); // also exercises cache growth
        var logits = new double[golden.Logits.Length];
        var step = new float[vocab];
        for (int t = 0; t < golden.Tokens.Length; t++)
        {
            model.Forward(golden.Tokens.AsSpan(t, 1), cache, step);
            for (int v = 0; v < vocab; v++) logits[t * vocab + v] = step[v];
        }
        Assert.Equal(golden.Tokens.Length, cache.Length);
        double error = golden.RelativeError(logits);
        Assert.True(error <= Tolerance, $"{name}: relative error {error:E3} > {Tolerance}");
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void Absorbed_and_expanded_attention_agree_on_a_prompt_then_chunked_continuation(string name)
    {
        var golden = GoldenCase.Load(name);
        using var model = KimiModel.Load(golden.Directory);
        var expanded = model.Logits(golden.Tokens, AttentionMode.Expanded);
        var absorbed = model.Logits(golden.Tokens, AttentionMode.Absorbed);
        AssertClose(expanded, absorbed, 1e-4);

        // A prefill of 10 tokens, then a chunk of 9, then one token at a time: the serving pattern.
        int vocab = model.Config.VocabSize;
        var cache = model.CreateCache();
        var chunked = new float[golden.Tokens.Length * vocab];
        model.Forward(golden.Tokens.AsSpan(0, 10), cache, chunked.AsSpan(0, 10 * vocab));
        model.Forward(golden.Tokens.AsSpan(10, 9), cache, chunked.AsSpan(10 * vocab, 9 * vocab));
        for (int t = 19; t < golden.Tokens.Length; t++)
            model.Forward(golden.Tokens.AsSpan(t, 1), cache, chunked.AsSpan(t * vocab, vocab));
        AssertClose(expanded, chunked, 1e-4);
    }

    [Fact]
    public void Last_position_only_logits_equal_the_last_row()
    {
        var golden = GoldenCase.Load("tiny-a-bf16");
        using var model = KimiModel.Load(golden.Directory);
        int vocab = model.Config.VocabSize;
        var all = model.Logits(golden.Tokens);
        var last = new float[vocab];
        model.Forward(golden.Tokens, model.CreateCache(), last, lastOnly: true);
        AssertClose(all.AsSpan((golden.Tokens.Length - 1) * vocab).ToArray(), last, 1e-6);
    }

    [Fact]
    public void Reference_cross_check_detects_a_wrong_model()
    {
        // The comparison must be able to fail: logits of another golden checkpoint are far off.
        var bf16 = GoldenCase.Load("tiny-a-bf16");
        var fp8 = GoldenCase.Load("tiny-a-fp8");
        using var model = KimiModel.Load(fp8.Directory);
        var logits = model.Logits(bf16.Tokens);
        Assert.True(bf16.RelativeError(Array.ConvertAll(logits, v => (double)v)) > 0.05);
    }

    internal static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        Assert.True(maxDiff <= relative * maxRef, $"relative difference {maxDiff / maxRef:E3} > {relative}");
    }
}
