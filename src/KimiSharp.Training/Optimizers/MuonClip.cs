using KimiSharp.Model.Configuration;

namespace KimiSharp.Training.Optimizers;

/// <summary>
/// MuonClip (Kimi K2 Algorithm 1): <see cref="Muon"/> for <see cref="ParameterKind.Matrix"/> parameters,
/// <see cref="AdamW"/> for every other kind, then per-head QK-Clip (<see cref="QkClip.Apply"/>) using the max
/// logits measured in this step's forward pass. Both inner optimizers take the same learning rate (Moonlight's
/// 0.2·√max(A,B) scaling makes Muon reuse AdamW's learning rate). Optimizer state is not rescaled by the clip.
/// </summary>
public sealed class MuonClip : IOptimizer
{
    private const string StateKind = "MuonClip";
    private readonly Parameter[] _parameters;

    /// <param name="parameters">All trainable parameters; routed by <see cref="Parameter.Kind"/>.</param>
    /// <param name="config">Model shape for QK-Clip (head counts and MLA dims); null disables clipping.</param>
    /// <param name="tau">QK-Clip threshold τ (K2: 100).</param>
    public MuonClip(IEnumerable<Parameter> parameters, ModelConfig? config, MuonOptions? muon = null, AdamWOptions? adamW = null, float tau = 100f)
    {
        _parameters = parameters.ToArray();
        OptimizerChecks.RequireUniqueNames(_parameters, nameof(MuonClip));
        Muon = new Muon(_parameters.Where(p => p.Kind == ParameterKind.Matrix), muon);
        AdamW = new AdamW(_parameters.Where(p => p.Kind != ParameterKind.Matrix), adamW);
        Config = config;
        if (!(tau > 0)) throw new ArgumentOutOfRangeException(nameof(tau), "tau must be positive");
        Tau = tau;
    }

    public Muon Muon { get; }
    public AdamW AdamW { get; }
    public ModelConfig? Config { get; }
    public float Tau { get; }
    public IReadOnlyList<Parameter> Parameters => _parameters;
    public long StepCount { get; private set; }

    /// <summary>The report of the last clip (null before the first step that supplied max logits).</summary>
    public QkClipReport? LastClip { get; private set; }

    /// <summary>Muon + AdamW update without QK-Clip.</summary>
    public void Step(float learningRate) => Step(learningRate, null);

    /// <summary>
    /// Muon + AdamW update, then QK-Clip with <paramref name="maxLogits"/>[layer][head] = S_max of each head in this
    /// step's forward (the largest softmax input over unmasked positions). Null skips the clip.
    /// </summary>
    public QkClipReport? Step(float learningRate, float[][]? maxLogits)
    {
        Muon.Step(learningRate);
        AdamW.Step(learningRate);
        StepCount++;
        if (maxLogits is null) return null;
        if (Config is null) throw new InvalidOperationException("MuonClip: max logits were given but no ModelConfig was supplied for QK-Clip");
        LastClip = QkClip.Apply(_parameters, Config, maxLogits, Tau);
        return LastClip;
    }

    public void SaveState(Stream stream)
    {
        using (var w = OptimizerStateIO.Begin(stream, StateKind, StepCount)) w.Flush();
        Muon.SaveState(stream);
        AdamW.SaveState(stream);
    }

    public void LoadState(Stream stream)
    {
        long step;
        using (OptimizerStateIO.Begin(stream, StateKind, out step)) { }
        Muon.LoadState(stream);
        AdamW.LoadState(stream);
        StepCount = step;
    }
}
