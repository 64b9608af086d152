using KimiSharp.Model.Safetensors;

namespace KimiSharp.Vision.Tests;

/// <summary>A temporary folder holding a random tiny K2.5 vision checkpoint.</summary>
internal sealed class TinyVisionModel : IDisposable
{
    public string Directory { get; }
    public VisionConfig Config { get; }

    public TinyVisionModel(SafetensorsDType dtype, VisionConfig? config = null, int seed = 7)
    {
        Directory = Path.Combine(Path.GetTempPath(), "kimisharp-vision-" + Guid.NewGuid().ToString("N")[..12]);
        Config = config ?? RandomVisionCheckpoint.Tiny();
        RandomVisionCheckpoint.WriteVisionOnly(Directory, Config, dtype, seed);
    }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

public sealed class VisionForwardTests
{
    private const double Tolerance = 1e-5;

    private static float[] RandomPixels(int patches, int patchElements, int seed)
    {
        var random = new Random(seed);
        var pixels = new float[patches * patchElements];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(random.NextDouble() * 2 - 1);
        return pixels;
    }

    /// <summary>max |engine − reference| ≤ 1e-5 · max |reference| over every feature.</summary>
    private static void AssertClose(double[,] reference, float[] engine, string what)
    {
        Assert.Equal(reference.Length, engine.Length);
        int cols = reference.GetLength(1);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < engine.Length; i++)
        {
            double r = reference[i / cols, i % cols];
            maxDiff = Math.Max(maxDiff, Math.Abs(r - engine[i]));
            maxRef = Math.Max(maxRef, Math.Abs(r));
        }
        Assert.True(maxRef > 0.1, $"{what}: reference features are degenerate (max |x| = {maxRef})");
        Assert.True(maxDiff <= Tolerance * maxRef, $"{what}: max |diff| {maxDiff:E3} exceeds {Tolerance:E0} × max |ref| {maxRef:E3}");
    }

    [Theory]
    [InlineData(SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.BF16)]
    public void EngineMatchesFloat64ReferenceOnImagesAndAVideoChunk(SafetensorsDType dtype)
    {
        using var model = new TinyVisionModel(dtype);
        var reference = new VisionReference(model.Directory);
        using var weights = VisionWeights.Load(model.Directory, VisionConfig.Load(model.Directory));
        var encoder = new VisionEncoder(weights);
        int pe = model.Config.PatchElements;
        // The tiny table is 4 rows × 6 columns: equal grid (stored table), square (resized), transposed non-square,
        // larger (upsampled), and a three-frame video chunk (time embedding + temporal mean).
        VisionGrid[] grids = [new(1, 4, 6), new(1, 4, 4), new(1, 6, 4), new(1, 8, 10), new(3, 4, 4)];
        var inputs = grids.Select((g, i) => new VisionInput(RandomPixels(g.Patches, pe, 100 + i), g)).ToArray();

        // All inputs go through the tower as one batch; attention must stay within each.
        var batched = encoder.Encode(inputs);
        for (int i = 0; i < inputs.Length; i++)
        {
            var g = inputs[i].Grid;
            Assert.Equal(encoder.TokensFor(g) * model.Config.TextHiddenSize, batched[i].Length);
            AssertClose(reference.Forward(inputs[i].Patches, g.Frames, g.Rows, g.Columns), batched[i], $"{dtype} grid {g}");
            // Encoding alone gives the same features as in the batch.
            Assert.Equal(batched[i], encoder.Encode([inputs[i]])[0]);
        }
    }

    [Fact]
    public void FullSize64By64TableUnresizedAndDownsampled()
    {
        // K2.5's own 64×64 table on a narrow tower (one 8-wide head) so the float64 reference stays cheap: a 64×64
        // grid (4096 patches, the table as stored) and a 10×14 grid (bicubic downsampling).
        var config = RandomVisionCheckpoint.Tiny(textHiddenSize: 8) with
        {
            HiddenSize = 8, NumAttentionHeads = 1, IntermediateSize = 16, NumHiddenLayers = 1, PosEmbHeight = 64, PosEmbWidth = 64,
        };
        using var model = new TinyVisionModel(SafetensorsDType.BF16, config);
        var reference = new VisionReference(model.Directory);
        using var weights = VisionWeights.Load(model.Directory, VisionConfig.Load(model.Directory));
        var encoder = new VisionEncoder(weights);
        foreach (var grid in new VisionGrid[] { new(1, 64, 64), new(1, 10, 14) })
        {
            var input = new VisionInput(RandomPixels(grid.Patches, config.PatchElements, grid.Rows), grid);
            AssertClose(reference.Forward(input.Patches, 1, grid.Rows, grid.Columns), encoder.Encode([input])[0], $"64×64 table, grid {grid}");
        }
    }

    [Fact]
    public void UnresizedTableIsUsedWhenTheGridEqualsIt_AndResizingWouldDiffer()
    {
        // A guard that the equal-grid case really is special: bicubic resizing a table to its own size with
        // align_corners=False is the identity, so the 4×6 result must equal a run whose grid matches exactly; a
        // transposed 6×4 grid must not.
        var table = Enumerable.Range(0, 4 * 6 * 2).Select(i => (float)Math.Sin(i)).ToArray();
        var same = VisionPositions.ResizeBicubic(table, 4, 6, 2, 4, 6);
        for (int i = 0; i < table.Length; i++) Assert.Equal(table[i], same[i], 6);
        var transposed = VisionPositions.ResizeBicubic(table, 4, 6, 2, 6, 4);
        Assert.NotEqual(table, transposed);
    }

    [Fact]
    public void BicubicMatchesTorchOnAKnownUpsample()
    {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bicubic", align_corners=False)
        // = [-0.10546875, 0.2265625, 0.7734375, 1.10546875]: output 0 sits at source −0.25, so its taps −2..1 clamp to
        // [0, 0, 0, 1] and only the far tap's weight ((a·1.25 − 5a)·1.25 + 8a)·1.25 − 4a = −0.10546875 survives.
        var resized = VisionPositions.ResizeBicubic([0f, 1f], 1, 2, 1, 1, 4);
        Assert.Equal([-0.10546875f, 0.2265625f, 0.7734375f, 1.10546875f], resized);
    }

    [Theory]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(-1.5, -0.9661051464753108)]
    [InlineData(2.4999, 0.9995928300996666)]
    [InlineData(2.5, 0.9995930479825550)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(5.0, 0.9999999999984626)]
    public void ErfOfTheExactGeluIsAccurateOnBothBranches(double x, double expected) =>
        Assert.Equal(expected, KimiSharp.Kernels.Ops.Erf(x), 10);

    [Fact]
    public void RotaryPairsAlternateColumnThenRow()
    {
        var (cos, sin) = VisionPositions.RotaryTable(rows: 3, cols: 5, headDim: 8);
        int pairs = 4, patch = 2 * 5 + 3; // row 2, column 3
        // Pair 0: column 3 at frequency 1; pair 1: row 2 at frequency 1; pair 2: column 3 at 10000^(-1/2).
        Assert.Equal(MathF.Cos(3), cos[patch * pairs + 0], 6);
        Assert.Equal(MathF.Sin(2), sin[patch * pairs + 1], 6);
        Assert.Equal(Math.Cos(3 * 0.01), cos[patch * pairs + 2], 6);
        Assert.Equal(Math.Sin(2 * 0.01), sin[patch * pairs + 3], 6);
    }

    [Fact]
    public void GridsOutsideTheTowerLimitsAreRefused()
    {
        using var model = new TinyVisionModel(SafetensorsDType.F32);
        using var weights = VisionWeights.Load(model.Directory, model.Config);
        var encoder = new VisionEncoder(weights);
        Assert.Contains("merge kernel", Assert.Throws<ArgumentException>(() => encoder.Validate(new VisionGrid(1, 3, 4))).Message);
        Assert.Contains("init_pos_emb_time", Assert.Throws<ArgumentException>(() => encoder.Validate(new VisionGrid(5, 4, 4))).Message);
        Assert.Contains("512", Assert.Throws<ArgumentException>(() => encoder.Validate(new VisionGrid(1, 2, 514))).Message);
        var wrongLength = new VisionInput(new float[10], new VisionGrid(1, 2, 2));
        Assert.Contains("pixel values", Assert.Throws<ArgumentException>(() => encoder.Encode([wrongLength])).Message);
    }
}
