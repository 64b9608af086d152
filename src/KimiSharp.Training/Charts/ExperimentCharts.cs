using KimiSharp.Training.Runs;

namespace KimiSharp.Training.Charts;

/// <summary>The QK-Clip experiment's chart: max attention logit and loss per step, one line per arm.</summary>
public static class ExperimentCharts
{
    /// <summary>Makes <see cref="QkClipExperiment.Run"/> draw its PNG.</summary>
    public static void Register() => QkClipExperiment.ChartWriter = Draw;

    /// <summary>Redraws the chart from a <c>qk-clip.csv</c> written by an earlier run.</summary>
    public static void FromCsv(string csvPath, string pngPath, float tau)
    {
        var points = File.ReadLines(csvPath).Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var f = l.Split(',');
            var c = System.Globalization.CultureInfo.InvariantCulture;
            return new ExperimentPoint(f[0], int.Parse(f[1], c), float.Parse(f[2], c), float.Parse(f[3], c), int.Parse(f[4], c));
        }).ToArray();
        var arms = points.Select(p => p.Arm).Distinct()
            .Select(name => new ExperimentArm(name, name.StartsWith("muonclip", StringComparison.Ordinal) ? "muonclip" : name,
                name.StartsWith("muonclip", StringComparison.Ordinal) ? tau : float.PositiveInfinity)).ToArray();
        Draw(pngPath, points, arms);
    }

    public static void Draw(string path, IReadOnlyList<ExperimentPoint> points, IReadOnlyList<ExperimentArm> arms)
    {
        float? tau = arms.Select(a => a.Tau).Where(float.IsFinite).Cast<float?>().FirstOrDefault();
        ChartSeries Series(ExperimentArm arm, Func<ExperimentPoint, double> value) =>
            new(arm.Name, points.Where(p => p.Arm == arm.Name).Select(p => ((double)p.Step, value(p))).ToArray());
        LineChart.SavePng(path,
        [
            new ChartPanel("Max attention logit (softmax input) per step", "step", "max logit",
                arms.Select(a => Series(a, p => p.MaxLogit)).ToArray(), HorizontalLine: tau, HorizontalLineLabel: tau is null ? null : $"tau = {tau:0}"),
            new ChartPanel("Training loss (copy task)", "step", "loss (log)",
                arms.Select(a => Series(a, p => p.Loss)).ToArray(), LogY: true),
        ]);
    }
}
