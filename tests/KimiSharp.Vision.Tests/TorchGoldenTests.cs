using System.Buffers.Binary;

namespace KimiSharp.Vision.Tests;

/// <summary>
/// The engine against outputs it has never seen: features PyTorch 1.13 computed for a checkpoint it wrote itself
/// (Fixtures/make_torch_golden.py, with torch's own F.interpolate, torch.polar RoPE and GELUs).
/// </summary>
public sealed class TorchGoldenTests
{
    [Fact]
    public void EngineMatchesTorchOnImagesAndChunks()
    {
        string directory = Path.Combine(AppContext.BaseDirectory, "Fixtures", "torch-golden");
        var config = VisionConfig.Load(directory);
        using var weights = VisionWeights.Load(directory, config);
        var encoder = new VisionEncoder(weights);
        var data = File.ReadAllBytes(Path.Combine(directory, "cases.bin")).AsSpan();
        var grids = new List<VisionGrid>();
        while (data.Length > 0)
        {
            var grid = new VisionGrid(BinaryPrimitives.ReadInt32LittleEndian(data), BinaryPrimitives.ReadInt32LittleEndian(data[4..]),
                BinaryPrimitives.ReadInt32LittleEndian(data[8..]));
            data = data[12..];
            var pixels = new float[grid.Patches * config.PatchElements];
            for (int i = 0; i < pixels.Length; i++) pixels[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]);
            data = data[(4 * pixels.Length)..];
            var expected = new double[encoder.TokensFor(grid) * config.TextHiddenSize];
            for (int i = 0; i < expected.Length; i++) expected[i] = BinaryPrimitives.ReadDoubleLittleEndian(data[(8 * i)..]);
            data = data[(8 * expected.Length)..];

            var actual = encoder.Encode([new VisionInput(pixels, grid)])[0];
            Assert.Equal(expected.Length, actual.Length);
            double maxDiff = 0, maxRef = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
                maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
            }
            Assert.True(maxDiff <= 1e-5 * maxRef, $"grid {grid}: max |diff| {maxDiff:E3} vs max |torch| {maxRef:E3}");
            grids.Add(grid);
        }
        // Stored table (4×6), transposed, upsampled, downsampled, and two video chunks.
        Assert.Equal(6, grids.Count);
        Assert.Contains(grids, g => g.Frames > 1);
    }
}
