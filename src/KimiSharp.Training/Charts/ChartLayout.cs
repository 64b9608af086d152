using System.Globalization;

namespace KimiSharp.Training.Charts;

/// <summary>One axis: data range (in log10 space when <see cref="Log"/>) and its tick positions/labels.</summary>
internal sealed record ChartAxis(double Min, double Max, bool Log, IReadOnlyList<(double Value, string Label)> Ticks)
{
    /// <summary>Value in the axis' linear space (log10 for log axes); NaN when not representable.</summary>
    public double Transform(double v) => Log ? (v > 0 ? Math.Log10(v) : double.NaN) : v;

    /// <summary>Fraction 0..1 along the axis (unclamped).</summary>
    public double Fraction(double v) => (Transform(v) - Min) / (Max - Min);

    /// <summary>True when the point can be drawn on this axis (finite, and positive for log axes).</summary>
    public bool Accepts(double v) => double.IsFinite(v) && (!Log || v > 0);

    /// <summary>Linear axis covering [lo, hi] extended to "nice" round tick bounds.</summary>
    public static ChartAxis Linear(double lo, double hi, int targetTicks = 6)
    {
        if (!(hi > lo))
        {
            double pad = lo == 0 ? 1 : Math.Abs(lo) * 0.1;
            lo -= pad;
            hi += pad;
        }
        double step = NiceNumber((hi - lo) / Math.Max(1, targetTicks - 1), round: true);
        double min = Math.Floor(lo / step) * step, max = Math.Ceiling(hi / step) * step;
        int decimals = Math.Clamp(-(int)Math.Floor(Math.Log10(step)), 0, 10);
        bool useGeneral = Math.Max(Math.Abs(min), Math.Abs(max)) >= 1e6 || step < 1e-4;

        var ticks = new List<(double, string)>();
        int n = (int)Math.Round((max - min) / step);
        for (int i = 0; i <= n; i++)
        {
            double v = min + i * step;
            if (Math.Abs(v) < step * 1e-9) v = 0; // avoid "-0" and 1e-17 noise
            string label = useGeneral ? v.ToString("G3", CultureInfo.InvariantCulture)
                                      : v.ToString("F" + decimals, CultureInfo.InvariantCulture);
            ticks.Add((v, label));
        }
        return new ChartAxis(min, max, false, ticks);
    }

    /// <summary>Log10 axis covering positive [lo, hi], with a tick at every decade.</summary>
    public static ChartAxis Logarithmic(double lo, double hi)
    {
        int a = (int)Math.Floor(Math.Log10(lo)), b = (int)Math.Ceiling(Math.Log10(hi));
        if (b <= a) b = a + 1;
        var ticks = new List<(double, string)>();
        int stride = Math.Max(1, (b - a + 7) / 8); // at most ~8 labelled decades
        for (int k = a; k <= b; k += stride)
            ticks.Add((k, DecadeLabel(k)));
        return new ChartAxis(a, b, true, ticks);
    }

    private static string DecadeLabel(int k) => k switch
    {
        >= 0 and <= 4 => Math.Pow(10, k).ToString("F0", CultureInfo.InvariantCulture),
        >= -3 and < 0 => Math.Pow(10, k).ToString("F" + -k, CultureInfo.InvariantCulture),
        _ => "1E" + k.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Heckbert's nice-number: 1, 2, 5 × 10^k closest to (or above) <paramref name="x"/>.</summary>
    private static double NiceNumber(double x, bool round)
    {
        double exp = Math.Floor(Math.Log10(x));
        double f = x / Math.Pow(10, exp);
        double nice = round
            ? f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10
            : f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
        return nice * Math.Pow(10, exp);
    }
}

/// <summary>Pixel geometry of one panel's plot area plus its axes; maps data to pixel coordinates.</summary>
internal sealed record PanelLayout(int PanelLeft, int PanelTop, int PanelWidth, int PanelHeight,
                                   ClipRect Plot, ChartAxis X, ChartAxis Y)
{
    public const int MarginLeft = 110, MarginRight = 24, MarginTop = 40, MarginBottom = 60;

    public double MapX(double x) => Plot.Left + X.Fraction(x) * (Plot.Right - 1 - Plot.Left);

    public double MapY(double y) => Plot.Bottom - 1 - Y.Fraction(y) * (Plot.Bottom - 1 - Plot.Top);

    /// <summary>True when (x, y) can be drawn (finite; y positive on log axes).</summary>
    public bool Accepts(double x, double y) => X.Accepts(x) && Y.Accepts(y);

    /// <summary>Pixel (rounded) for a data point; only valid when <see cref="Accepts"/> is true.</summary>
    public (int Px, int Py) ToPixel(double x, double y) =>
        ((int)Math.Round(MapX(x)), (int)Math.Round(MapY(y)));

    /// <summary>Computes axes from the panel's drawable points (and reference line) and places the plot area.</summary>
    public static PanelLayout Compute(ChartPanel panel, int panelLeft, int panelTop, int panelWidth, int panelHeight)
    {
        double xLo = double.PositiveInfinity, xHi = double.NegativeInfinity;
        double yLo = double.PositiveInfinity, yHi = double.NegativeInfinity;
        foreach (var s in panel.Series)
            foreach (var (x, y) in s.Points)
            {
                if (!double.IsFinite(x) || !double.IsFinite(y) || (panel.LogY && y <= 0)) continue;
                xLo = Math.Min(xLo, x); xHi = Math.Max(xHi, x);
                yLo = Math.Min(yLo, y); yHi = Math.Max(yHi, y);
            }
        if (panel.HorizontalLine is double h && double.IsFinite(h) && (!panel.LogY || h > 0))
        {
            yLo = Math.Min(yLo, h); yHi = Math.Max(yHi, h);
        }

        bool hasX = xLo <= xHi, hasY = yLo <= yHi;
        var xAxis = hasX ? ChartAxis.Linear(xLo, xHi) : ChartAxis.Linear(0, 1);
        var yAxis = panel.LogY
            ? (hasY ? ChartAxis.Logarithmic(yLo, yHi) : ChartAxis.Logarithmic(1, 10))
            : (hasY ? ChartAxis.Linear(yLo, yHi) : ChartAxis.Linear(0, 1));

        var plot = new ClipRect(
            panelLeft + MarginLeft,
            panelTop + MarginTop,
            panelLeft + Math.Max(MarginLeft + 10, panelWidth - MarginRight),
            panelTop + Math.Max(MarginTop + 10, panelHeight - MarginBottom));
        return new PanelLayout(panelLeft, panelTop, panelWidth, panelHeight, plot, xAxis, yAxis);
    }
}
