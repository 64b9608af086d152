using KimiSharp.Training.Runs;

namespace KimiSharp.Training.Charts;

/// <summary>The QK-Clip experiment's chart: max attention logit and loss per step, one line per arm.</summary>
public static class ExperimentCharts
{
    /// <summary>Makes <see cref="QkClipExperiment.Run"/> draw its PNG.</summary>
    public static void Register() => QkClipExperiment.ChartWriter = Draw;

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
