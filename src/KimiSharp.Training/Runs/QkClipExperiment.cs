using System.Diagnostics;
using System.Globalization;
using System.Text;
using KimiSharp.Model.Configuration;
using KimiSharp.Training.Optimizers;

namespace KimiSharp.Training.Runs;

/// <summary>One arm of the QK-Clip experiment.</summary>
public sealed record ExperimentArm(string Name, string Optimizer, float Tau = float.PositiveInfinity, float WeightDecay = 0);

/// <summary>Per-step record of one arm.</summary>
public sealed record ExperimentPoint(string Arm, int Step, float Loss, float MaxLogit, int HeadsClipped);

/// <summary>How one arm ended.</summary>
public sealed record ExperimentOutcome(ExperimentArm Arm, float PeakMaxLogit, float FinalMaxLogit, float FinalLoss, float HeldOutLoss, double Seconds);

/// <summary>
/// The QK-Clip demonstration at CPU scale (../shared/research/training.md §7): a 3-layer, 4-head, d_model 64 MLA
/// model on a copy task (32 random tokens, then the same 32 again; loss on the copy), trained with Muon at lr 1e-2 and
/// no weight decay, where attention logits keep growing once the task is solved; the same run with QK-Clip; and
/// AdamW at the same learning rate as the optimizer comparison. Every arm sees the same batches.
/// </summary>
public static class QkClipExperiment
{
    public const int Vocab = 64, Half = 32, Batch = 16;

    public static readonly ModelConfig Shape = ModelConfig.Parse("""
        {"model_type":"deepseek_v3","vocab_size":64,"hidden_size":64,"intermediate_size":256,"num_hidden_layers":3,
         "num_attention_heads":4,"n_routed_experts":0,"q_lora_rank":null,"kv_lora_rank":32,"qk_nope_head_dim":16,
         "qk_rope_head_dim":8,"v_head_dim":16,"max_position_embeddings":128,"rope_theta":10000.0,"rms_norm_eps":1e-5,
         "tie_word_embeddings":false}
        """);

    public static IReadOnlyList<ExperimentArm> DefaultArms(float tau = 100) =>
    [
        new("muon", "muon"),
        new($"muonclip-tau{tau:0}", "muonclip", tau),
        new("adamw", "adamw"),
    ];

    /// <summary>The copy-task batch of <paramref name="step"/>: inputs, next-token targets, and a mask on the copied half.</summary>
    public static (int[] Inputs, int[] Targets, float[] Mask) CopyBatch(int step, int seed)
    {
        var random = new Random(unchecked(seed * 1_000_003 + step));
        int seq = 2 * Half;
        var inputs = new int[Batch * seq];
        var targets = new int[Batch * seq];
        var mask = new float[Batch * seq];
        for (int b = 0; b < Batch; b++)
        {
            for (int i = 0; i < Half; i++) inputs[b * seq + i] = inputs[b * seq + Half + i] = random.Next(2, Vocab);
            for (int i = 0; i < seq; i++)
            {
                targets[b * seq + i] = i + 1 < seq ? inputs[b * seq + i + 1] : -1;
                mask[b * seq + i] = i >= Half - 1 && i + 1 < seq ? 1 : 0; // predicting tokens Half…seq−1: the copy
            }
        }
        return (inputs, targets, mask);
    }

    public static ExperimentOutcome RunArm(ExperimentArm arm, int steps, float learningRate, int seed,
        ICollection<ExperimentPoint> points, IProgress<ExperimentPoint>? progress = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var model = new TrainableModel(Shape, seed);
        var matrices = model.Parameters.Where(p => p.Kind == ParameterKind.Matrix).ToArray();
        var others = model.Parameters.Where(p => p.Kind != ParameterKind.Matrix).ToArray();
        Muon? muon = arm.Optimizer == "adamw" ? null : new Muon(matrices, new MuonOptions { WeightDecay = arm.WeightDecay });
        var adam = new AdamW(arm.Optimizer == "adamw" ? model.Parameters : others, new AdamWOptions { WeightDecay = arm.WeightDecay });
        float peak = 0, lastMax = 0, lastLoss = 0;
        for (int step = 0; step < steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (inputs, targets, mask) = CopyBatch(step, seed);
            model.ZeroGrad();
            float loss = model.Forward(inputs, Batch, 2 * Half, targets, mask);
            model.Backward();
            // S_max of this step's forward, before the update (what QK-Clip compares with τ).
            float maxLogit = model.MaxAttentionLogits.SelectMany(r => r).Max();
            muon?.Step(learningRate);
            adam.Step(learningRate);
            int clipped = arm.Optimizer == "muonclip" ? QkClip.Apply(model.Parameters, Shape, model.MaxAttentionLogits, arm.Tau).HeadsClipped : 0;
            var point = new ExperimentPoint(arm.Name, step, loss, maxLogit, clipped);
            points.Add(point);
            progress?.Report(point);
            peak = Math.Max(peak, maxLogit);
            lastMax = maxLogit;
            lastLoss = loss;
        }
        // Held-out copy loss on batches never trained on.
        float heldOut = 0;
        for (int k = 0; k < 4; k++)
        {
            var (inputs, targets, mask) = CopyBatch(1_000_000 + k, seed);
            heldOut += model.Forward(inputs, Batch, 2 * Half, targets, mask) / 4;
        }
        return new ExperimentOutcome(arm, peak, lastMax, lastLoss, heldOut, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Runs every arm, writes <c>qk-clip.csv</c>, <c>qk-clip.png</c> and <c>qk-clip.md</c> (a summary table) into <paramref name="outputDirectory"/>.</summary>
    public static IReadOnlyList<ExperimentOutcome> Run(string outputDirectory, IReadOnlyList<ExperimentArm> arms, int steps = 800,
        float learningRate = 1e-2f, int seed = 1, IProgress<ExperimentPoint>? progress = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(outputDirectory);
        var points = new List<ExperimentPoint>();
        var outcomes = arms.Select(arm => RunArm(arm, steps, learningRate, seed, points, progress, cancellationToken)).ToArray();

        var csv = new StringBuilder("arm,step,loss,max_attention_logit,heads_clipped\n");
        foreach (var p in points)
            csv.Append(string.Create(CultureInfo.InvariantCulture, $"{p.Arm},{p.Step},{p.Loss:R},{p.MaxLogit:R},{p.HeadsClipped}\n"));
        WriteAtomically(Path.Combine(outputDirectory, "qk-clip.csv"), csv.ToString());

        var summary = new StringBuilder();
        summary.AppendLine($"QK-Clip experiment: {Shape.NumHiddenLayers}-layer, {Shape.NumAttentionHeads}-head MLA model (d_model {Shape.HiddenSize}), copy task, lr {learningRate}, no weight decay, {steps} steps, seed {seed}.");
        summary.AppendLine();
        summary.AppendLine("| arm | peak max logit | max logit at end | final train loss | held-out copy loss | seconds |");
        summary.AppendLine("|---|---|---|---|---|---|");
        foreach (var o in outcomes)
            summary.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {o.Arm.Name} | {o.PeakMaxLogit:F1} | {o.FinalMaxLogit:F1} | {o.FinalLoss:F4} | {o.HeldOutLoss:F4} | {o.Seconds:F0} |"));
        WriteAtomically(Path.Combine(outputDirectory, "qk-clip.md"), summary.ToString());
        ChartWriter?.Invoke(Path.Combine(outputDirectory, "qk-clip.png"), points, arms);
        return outcomes;
    }

    /// <summary>Draws the chart (set by the chart module so this file stays free of drawing code).</summary>
    public static Action<string, IReadOnlyList<ExperimentPoint>, IReadOnlyList<ExperimentArm>>? ChartWriter { get; set; }

    private static void WriteAtomically(string path, string text)
    {
        File.WriteAllText(path + ".partial", text);
        File.Move(path + ".partial", path, overwrite: true);
    }
}
