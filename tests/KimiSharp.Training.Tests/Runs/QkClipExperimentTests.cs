using KimiSharp.Training.Runs;

namespace KimiSharp.Training.Tests.Runs;

/// <summary>The experiment's machinery on a short run: the copy task, and a τ low enough to bite within seconds.</summary>
public sealed class QkClipExperimentTests
{
    [Fact]
    public void Copy_batches_repeat_the_first_half_and_mask_only_the_copy()
    {
        var (inputs, targets, mask) = QkClipExperiment.CopyBatch(3, seed: 1);
        int seq = 2 * QkClipExperiment.Half;
        for (int i = 0; i < QkClipExperiment.Half; i++) Assert.Equal(inputs[i], inputs[QkClipExperiment.Half + i]);
        Assert.Equal(inputs[5], targets[4]);
        Assert.Equal(QkClipExperiment.Half, mask.Take(seq).Count(m => m == 1));
        Assert.Equal(0, mask[QkClipExperiment.Half - 2]);
        Assert.Equal(1, mask[QkClipExperiment.Half - 1]);
        Assert.Equal(inputs, QkClipExperiment.CopyBatch(3, seed: 1).Inputs);
    }

    [Fact]
    public void Clipping_caps_the_max_logit_that_plain_muon_lets_grow()
    {
        const int steps = 60;
        const float tau = 1.5f;
        var plain = new List<ExperimentPoint>();
        var clipped = new List<ExperimentPoint>();
        var muon = QkClipExperiment.RunArm(new ExperimentArm("muon", "muon"), steps, 2e-2f, 1, plain);
        QkClipExperiment.RunArm(new ExperimentArm("clip", "muonclip", tau), steps, 2e-2f, 1, clipped);
        Assert.True(muon.PeakMaxLogit > 2 * tau, $"plain Muon peaked at {muon.PeakMaxLogit}");
        int first = clipped.FindIndex(p => p.HeadsClipped > 0);
        Assert.True(first >= 0, "QK-Clip never fired");
        // After the first clip the measured maximum stays near τ (the next step's update can overshoot it a little,
        // relatively more at this tiny τ) and far below what plain Muon reaches on the same batches.
        float worst = clipped.Skip(first + 1).Max(p => p.MaxLogit);
        float plainAfter = plain.Skip(first + 1).Max(p => p.MaxLogit);
        Assert.True(worst < 2 * tau, $"max logit reached {worst} with τ = {tau}");
        Assert.True(worst < 0.75f * plainAfter, $"clipped {worst} vs plain {plainAfter}");
        Assert.Equal(plain.Take(first + 1).Select(p => p.Loss), clipped.Take(first + 1).Select(p => p.Loss)); // identical until the first clip
    }
}
