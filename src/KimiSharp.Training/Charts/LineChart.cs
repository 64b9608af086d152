namespace KimiSharp.Training.Charts;

/// <summary>A named polyline of (X, Y) data points.</summary>
public sealed record ChartSeries(string Label, IReadOnlyList<(double X, double Y)> Points);

/// <summary>One chart panel: title, axis labels, series, optional log-scale Y and dashed horizontal reference line.</summary>
public sealed record ChartPanel(
    string Title,
    string XLabel,
    string YLabel,
    IReadOnlyList<ChartSeries> Series,
    bool LogY = false,
    double? HorizontalLine = null,
    string? HorizontalLineLabel = null);

/// <summary>
/// Dependency-free line-chart renderer. Panels are stacked vertically into one PNG; each panel has a title,
/// gridlines with nice round tick labels, 2-px coloured series polylines, a legend and an optional dashed
/// reference line. Non-finite points (and Y ≤ 0 on log axes) are skipped.
/// </summary>
public static class LineChart
{
    internal const int TextScale = 2;
    internal const int LineThickness = 2;

    internal static readonly Rgb Background = new(255, 255, 255);
    internal static readonly Rgb AxisColor = new(0, 0, 0);
    internal static readonly Rgb GridColor = new(228, 228, 228);
    internal static readonly Rgb TextColor = new(30, 30, 30);
    internal static readonly Rgb ReferenceColor = new(110, 110, 110);

    // Tableau-10 style palette; cycles for more series.
    private static readonly Rgb[] Palette =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(23, 190, 207), new(188, 189, 34), new(127, 127, 127),
    ];

    internal static Rgb SeriesColor(int index) => Palette[index % Palette.Length];

    /// <summary>Renders <paramref name="panels"/> stacked vertically and writes them atomically (temp file + rename) as a PNG.</summary>
    public static void SavePng(string path, IReadOnlyList<ChartPanel> panels, int panelWidth = 900, int panelHeight = 420)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var canvas = Render(panels, panelWidth, panelHeight, out _);
        byte[] png = EncodePng(canvas.Width, canvas.Height, canvas.Pixels);

        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string tmp = full + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            File.WriteAllBytes(tmp, png);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Encodes 8-bit RGB pixels (row-major, 3 bytes per pixel) as a PNG with filter type 0 on every row.</summary>
    public static byte[] EncodePng(int width, int height, ReadOnlySpan<byte> rgb) => PngEncoder.Encode(width, height, rgb);

    /// <summary>Rasterises all panels; <paramref name="layouts"/> exposes each panel's data→pixel mapping.</summary>
    internal static Canvas Render(IReadOnlyList<ChartPanel> panels, int panelWidth, int panelHeight,
                                  out IReadOnlyList<PanelLayout> layouts)
    {
        ArgumentNullException.ThrowIfNull(panels);
        if (panels.Count == 0) throw new ArgumentException("At least one panel is required.", nameof(panels));
        ArgumentOutOfRangeException.ThrowIfLessThan(panelWidth, 200);
        ArgumentOutOfRangeException.ThrowIfLessThan(panelHeight, 150);

        var canvas = new Canvas(panelWidth, checked(panelHeight * panels.Count), Background);
        var list = new List<PanelLayout>(panels.Count);
        for (int i = 0; i < panels.Count; i++)
        {
            var layout = PanelLayout.Compute(panels[i], 0, i * panelHeight, panelWidth, panelHeight);
            DrawPanel(canvas, panels[i], layout);
            list.Add(layout);
        }
        layouts = list;
        return canvas;
    }

    private static void DrawPanel(Canvas c, ChartPanel panel, PanelLayout l)
    {
        const int s = TextScale;
        int charH = BitmapFont.GlyphHeight * s;
        var p = l.Plot;

        // Title, centred above the plot area.
        int titleW = BitmapFont.MeasureWidth(panel.Title, s);
        c.DrawText(p.Left + (p.Right - p.Left - titleW) / 2, l.PanelTop + (PanelLayout.MarginTop - charH) / 2, panel.Title, TextColor, s);

        // Gridlines and tick labels.
        foreach (var (v, label) in l.X.Ticks)
        {
            int x = (int)Math.Round(p.Left + (v - l.X.Min) / (l.X.Max - l.X.Min) * (p.Right - 1 - p.Left));
            c.DrawLine(x, p.Top, x, p.Bottom - 1, GridColor);
            c.DrawLine(x, p.Bottom, x, p.Bottom + 4, AxisColor);
            c.DrawText(x - BitmapFont.MeasureWidth(label, s) / 2, p.Bottom + 8, label, TextColor, s);
        }
        foreach (var (v, label) in l.Y.Ticks)
        {
            int y = (int)Math.Round(p.Bottom - 1 - (v - l.Y.Min) / (l.Y.Max - l.Y.Min) * (p.Bottom - 1 - p.Top));
            c.DrawLine(p.Left, y, p.Right - 1, y, GridColor);
            c.DrawLine(p.Left - 5, y, p.Left - 1, y, AxisColor);
            c.DrawText(p.Left - 8 - BitmapFont.MeasureWidth(label, s), y - charH / 2, label, TextColor, s);
        }

        // Axis labels: X centred below tick labels, Y rotated along the left edge.
        int xlW = BitmapFont.MeasureWidth(panel.XLabel, s);
        c.DrawText(p.Left + (p.Right - p.Left - xlW) / 2, p.Bottom + 8 + charH + 8, panel.XLabel, TextColor, s);
        int ylW = BitmapFont.MeasureWidth(panel.YLabel, s);
        c.DrawTextVertical(l.PanelLeft + 6, p.Top + (p.Bottom - p.Top + ylW) / 2, panel.YLabel, TextColor, s);

        // Dashed reference line with optional label at its right end.
        if (panel.HorizontalLine is double h && l.Y.Accepts(h))
        {
            int y = (int)Math.Round(l.MapY(h));
            for (int x = p.Left; x < p.Right; x += 12)
                c.DrawLine(x, y, Math.Min(x + 6, p.Right - 1), y, ReferenceColor, LineThickness, p);
            if (!string.IsNullOrEmpty(panel.HorizontalLineLabel))
            {
                string lab = panel.HorizontalLineLabel;
                c.DrawText(p.Right - 4 - BitmapFont.MeasureWidth(lab, s), y - charH - 4, lab, ReferenceColor, s);
            }
        }

        // Series polylines (skipping undrawable points); a lone point becomes a small square marker.
        for (int si = 0; si < panel.Series.Count; si++)
        {
            var color = SeriesColor(si);
            (int X, int Y)? prev = null;
            int drawn = 0;
            foreach (var (x, y) in panel.Series[si].Points)
            {
                if (!l.Accepts(x, y)) continue;
                var pt = l.ToPixel(x, y);
                if (prev is { } q) c.DrawLine(q.X, q.Y, pt.Px, pt.Py, color, LineThickness, p);
                prev = (pt.Px, pt.Py);
                drawn++;
            }
            if (drawn == 1 && prev is { } only) c.Stamp(only.X - 2, only.Y - 2, color, 5, p);
        }

        // Axes frame drawn last so lines never cover it.
        c.DrawLine(p.Left - 1, p.Top, p.Left - 1, p.Bottom, AxisColor);
        c.DrawLine(p.Left - 1, p.Bottom, p.Right - 1, p.Bottom, AxisColor);

        DrawLegend(c, panel, l);
    }

    /// <summary>Legend box (colour swatch + label per series) in the plot corner covering the fewest data points.</summary>
    private static void DrawLegend(Canvas c, ChartPanel panel, PanelLayout l)
    {
        if (panel.Series.Count == 0) return;
        const int s = TextScale, pad = 8, swatch = 24, gap = 8;
        int rowH = BitmapFont.GlyphHeight * s + 6;
        int maxLabel = panel.Series.Max(x => BitmapFont.MeasureWidth(x.Label, s));
        int w = pad + swatch + gap + maxLabel + pad;
        int h = pad * 2 + rowH * panel.Series.Count - 6;
        var (x0, y0) = PickLegendCorner(panel, l, w, h);

        c.FillRect(x0, y0, w, h, Background);
        c.StrokeRect(x0, y0, w, h, AxisColor);
        for (int i = 0; i < panel.Series.Count; i++)
        {
            int ty = y0 + pad + i * rowH;
            int midY = ty + BitmapFont.GlyphHeight * s / 2 - 1;
            c.FillRect(x0 + pad, midY, swatch, LineThickness + 1, SeriesColor(i));
            c.DrawText(x0 + pad + swatch + gap, ty, panel.Series[i].Label, TextColor, s);
        }
    }

    /// <summary>Top-left pixel for a w×h legend: top-right, top-left, bottom-right or bottom-left, first with least overlap.</summary>
    private static (int X, int Y) PickLegendCorner(ChartPanel panel, PanelLayout l, int w, int h)
    {
        const int inset = 8, slack = 3;
        var p = l.Plot;
        (int X, int Y)[] corners =
        [
            (p.Right - w - inset, p.Top + inset), (p.Left + inset, p.Top + inset),
            (p.Right - w - inset, p.Bottom - h - inset), (p.Left + inset, p.Bottom - h - inset),
        ];

        // Sample every drawn segment (and lone points) in pixel space.
        var samples = new List<(double X, double Y)>();
        foreach (var series in panel.Series)
        {
            (double X, double Y)? prev = null;
            foreach (var (x, y) in series.Points)
            {
                if (!l.Accepts(x, y)) continue;
                var cur = (l.MapX(x), l.MapY(y));
                if (prev is { } q)
                    for (int k = 1; k <= 16; k++)
                        samples.Add((q.X + (cur.Item1 - q.X) * k / 16, q.Y + (cur.Item2 - q.Y) * k / 16));
                else
                    samples.Add(cur);
                prev = cur;
            }
        }

        var best = corners[0];
        int bestCount = int.MaxValue;
        foreach (var (cx, cy) in corners)
        {
            int count = samples.Count(s => s.X >= cx - slack && s.X < cx + w + slack && s.Y >= cy - slack && s.Y < cy + h + slack);
            if (count < bestCount) (best, bestCount) = ((cx, cy), count);
        }
        return best;
    }
}
