using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using KimiSharp.Training.Charts;

namespace KimiSharp.Training.Tests.Charts;

public sealed class LineChartTests
{
    private sealed record Chunk(string Type, byte[] Data);

    /// <summary>Parses a PNG, asserting the signature and every chunk's CRC-32.</summary>
    private static List<Chunk> ReadChunks(byte[] png)
    {
        Assert.True(png.AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }));
        var chunks = new List<Chunk>();
        int pos = 8;
        while (pos < png.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            byte[] data = png.AsSpan(pos + 8, len).ToArray();
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            Assert.Equal(ReferenceCrc(png.AsSpan(pos + 4, 4 + len)), crc);
            chunks.Add(new Chunk(type, data));
            pos += 12 + len;
        }
        Assert.Equal(png.Length, pos);
        return chunks;
    }

    /// <summary>Bitwise CRC-32 independent of the production table-driven one.</summary>
    private static uint ReferenceCrc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (uint)-(int)(c & 1));
        }
        return ~c;
    }

    /// <summary>Decodes an 8-bit RGB, filter-0 PNG into (width, height, rgb).</summary>
    private static (int W, int H, byte[] Rgb) Decode(byte[] png)
    {
        var chunks = ReadChunks(png);
        Assert.Equal("IHDR", chunks[0].Type);
        Assert.Equal("IEND", chunks[^1].Type);
        var ihdr = chunks[0].Data;
        int w = BinaryPrimitives.ReadInt32BigEndian(ihdr), h = BinaryPrimitives.ReadInt32BigEndian(ihdr.AsSpan(4));
        Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, ihdr[8..]);

        using var compressed = new MemoryStream(chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray());
        using var z = new ZLibStream(compressed, CompressionMode.Decompress);
        using var raw = new MemoryStream();
        z.CopyTo(raw);
        byte[] bytes = raw.ToArray();
        int stride = w * 3;
        Assert.Equal((stride + 1) * h, bytes.Length);
        var rgb = new byte[stride * h];
        for (int y = 0; y < h; y++)
        {
            Assert.Equal(0, bytes[y * (stride + 1)]);
            Array.Copy(bytes, y * (stride + 1) + 1, rgb, y * stride, stride);
        }
        return (w, h, rgb);
    }

    private static (byte, byte, byte) Pixel(byte[] rgb, int w, int x, int y)
    {
        int i = (y * w + x) * 3;
        return (rgb[i], rgb[i + 1], rgb[i + 2]);
    }

    [Fact]
    public void Crc32_MatchesKnownCheckValue()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
        // IEND chunk CRC is a well-known constant.
        Assert.Equal(0xAE426082u, Crc32.Compute("IEND"u8));
    }

    [Fact]
    public void EncodePng_TinyImage_RoundTrips()
    {
        // 3×2: red, green, blue / white, black, grey.
        byte[] rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 128, 128];
        byte[] png = LineChart.EncodePng(3, 2, rgb);

        var (w, h, decoded) = Decode(png);
        Assert.Equal((3, 2), (w, h));
        Assert.Equal(rgb, decoded);
        Assert.Equal(["IHDR", "IDAT", "IEND"], ReadChunks(png).Select(c => c.Type));
    }

    [Fact]
    public void EncodePng_RejectsWrongBufferLength()
    {
        Assert.Throws<ArgumentException>(() => LineChart.EncodePng(2, 2, new byte[11]));
    }

    private static IReadOnlyList<ChartPanel> TwoPanels() =>
    [
        new ChartPanel("Loss", "step", "loss",
        [
            new ChartSeries("train", [(0, 10), (50, 6), (100, 4), (200, 3)]),
            new ChartSeries("val", [(0, 9), (100, 5), (200, 3.5)]),
            new ChartSeries("ema", [(0, 9.5), (double.NaN, 1), (200, double.PositiveInfinity), (150, 3.2)]),
        ], HorizontalLine: 2.5, HorizontalLineLabel: "τ=2.5"),
        new ChartPanel("Max logit", "step", "logit",
        [
            new ChartSeries("muon", [(0, 1), (10, 100), (20, 50)]),
            new ChartSeries("adamw", [(0, 2), (10, 300), (20, 1000)]),
        ], LogY: true, HorizontalLine: 100, HorizontalLineLabel: "τ"),
    ];

    [Fact]
    public void SavePng_TwoPanels_HasExpectedSizeAndSeriesColors()
    {
        var panels = TwoPanels();
        string dir = Path.Combine(Path.GetTempPath(), "kimisharp-charts-" + Guid.NewGuid().ToString("N"));
        string path = Path.Combine(dir, "chart.png");
        try
        {
            LineChart.SavePng(path, panels, 640, 300);
            var (w, h, rgb) = Decode(File.ReadAllBytes(path));
            Assert.Equal((640, 600), (w, h));
            Assert.Single(Directory.GetFiles(dir)); // no temp file left behind

            // Sample data points with the same layout math the renderer uses.
            LineChart.Render(panels, 640, 300, out var layouts);
            Assert.Equal(300, layouts[1].PanelTop);
            void AssertColorAt(int panel, double x, double y, int series)
            {
                var (px, py) = layouts[panel].ToPixel(x, y);
                var c = LineChart.SeriesColor(series);
                Assert.Equal((c.R, c.G, c.B), Pixel(rgb, w, px, py));
            }
            AssertColorAt(0, 50, 6, 0);   // train vertex
            AssertColorAt(0, 100, 5, 1);  // val vertex
            AssertColorAt(0, 0, 9.5, 2);  // ema vertex (NaN/∞ points skipped)
            AssertColorAt(1, 0, 1, 0);    // muon at the bottom-left of the log panel
            AssertColorAt(1, 0, 2, 1);    // adamw

            // Every series colour appears somewhere in the image.
            var present = new HashSet<(byte, byte, byte)>();
            for (int i = 0; i < rgb.Length; i += 3) present.Add((rgb[i], rgb[i + 1], rgb[i + 2]));
            for (int s = 0; s < 3; s++)
            {
                var c = LineChart.SeriesColor(s);
                Assert.Contains((c.R, c.G, c.B), present);
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Render_LogAxisSkipsNonPositiveValues()
    {
        ChartPanel[] panels =
        [
            new("log", "x", "y",
            [
                new ChartSeries("a", [(0, 0), (1, -5), (2, 10), (3, 1000), (4, double.NaN)]),
                new ChartSeries("zeros", [(0, 0), (1, -1)]),
            ], LogY: true, HorizontalLine: -1),
        ];
        var canvas = LineChart.Render(panels, 400, 200, out var layouts);
        var l = layouts[0];
        Assert.True(l.Y.Log);
        Assert.Equal(1, l.Y.Min);   // 10^1
        Assert.Equal(3, l.Y.Max);   // 10^3
        Assert.Equal(2, l.X.Min);   // x range only from drawable points
        var (px, py) = l.ToPixel(2, 10);
        Assert.Equal(LineChart.SeriesColor(0), canvas.GetPixel(px, py));
    }

    [Fact]
    public void Render_HandlesEmptySeriesAndSinglePoint()
    {
        ChartPanel[] panels =
        [
            new("empty", "x", "y", []),
            new("empty series", "x", "y", [new ChartSeries("none", [])], LogY: true),
            new("single", "x", "y", [new ChartSeries("one", [(3, 7)])]),
        ];
        var canvas = LineChart.Render(panels, 500, 260, out var layouts);
        Assert.Equal((500, 780), (canvas.Width, canvas.Height));
        var (px, py) = layouts[2].ToPixel(3, 7);
        Assert.Equal(LineChart.SeriesColor(0), canvas.GetPixel(px, py));
    }

    [Fact]
    public void LinearAxis_UsesNiceRoundTicks()
    {
        var axis = ChartAxis.Linear(0.13, 9.7);
        Assert.Equal(0, axis.Min);
        Assert.Equal(10, axis.Max);
        Assert.Equal(["0", "2", "4", "6", "8", "10"], axis.Ticks.Select(t => t.Label));

        var small = ChartAxis.Linear(0.001, 0.0042);
        Assert.All(small.Ticks, t => Assert.Equal(Math.Round(t.Value, 4), t.Value, 12));
    }

    /// <summary>Writes a sample chart for visual inspection when KIMISHARP_CHART_SAMPLE names an output path.</summary>
    [Fact]
    public void SavePng_OptionalSampleForInspection()
    {
        string? path = Environment.GetEnvironmentVariable("KIMISHARP_CHART_SAMPLE");
        if (string.IsNullOrEmpty(path)) return;
        LineChart.SavePng(path, TwoPanels());
    }

    [Fact]
    public void SavePng_OverwritesExistingFile()
    {
        string path = Path.Combine(Path.GetTempPath(), "kimisharp-chart-" + Guid.NewGuid().ToString("N") + ".png");
        try
        {
            File.WriteAllText(path, "old");
            LineChart.SavePng(path, [new ChartPanel("t", "x", "y", [new ChartSeries("s", [(0, 0), (1, 1)])])], 300, 200);
            var (w, h, _) = Decode(File.ReadAllBytes(path));
            Assert.Equal((300, 200), (w, h));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
