namespace KimiSharp.Training.Optimizers;

/// <summary>Muon hyper-parameters (defaults: Moonlight / Kimi K2).</summary>
public sealed record MuonOptions
{
    /// <summary>Momentum μ (sum form M ← μ·M + G).</summary>
    public float Momentum { get; init; } = 0.95f;
    /// <summary>Nesterov: orthogonalise G + μ·M instead of M (Moonlight footnote 1).</summary>
    public bool Nesterov { get; init; } = true;
    public int NewtonSchulzSteps { get; init; } = NewtonSchulz.DefaultSteps;
    public float NewtonSchulzEpsilon { get; init; } = NewtonSchulz.DefaultEpsilon;
    /// <summary>Target update RMS: the update is O·RmsScale·√max(rows, cols) (Moonlight: 0.2, matching AdamW's RMS).</summary>
    public float RmsScale { get; init; } = 0.2f;
    /// <summary>Decoupled weight decay λ: W ← W·(1 − lr·λ) − lr·update (the decay uses the plain lr).</summary>
    public float WeightDecay { get; init; } = 0.1f;
}

/// <summary>
/// Muon for 2-D weights (Moonlight eq. 4 / K2 Algorithm 1): M ← μM + G; U = G + μM (Nesterov) or M;
/// O = NewtonSchulz5(U); W ← W·(1 − lr·λ) − lr·(RmsScale·√max(A, B))·O, with W of shape [A, B].
/// Matrices are orthogonalised whole (not per head), as the Moonlight RMS rule assumes.
/// </summary>
public sealed class Muon : IOptimizer
{
    private const string StateKind = "Muon";
    private readonly Parameter[] _parameters;
    private readonly float[][] _momentum;

    public Muon(IEnumerable<Parameter> parameters, MuonOptions? options = null)
    {
        _parameters = parameters.ToArray();
        Options = options ?? new MuonOptions();
        if (Options.Momentum is < 0 or >= 1) throw new ArgumentException("Muon: momentum must be in [0, 1)");
        foreach (var p in _parameters)
            if (p.Shape.Length != 2)
                throw new ArgumentException($"Muon: parameter '{p.Name}' has shape [{string.Join(", ", p.Shape)}]; Muon needs a 2-D matrix");
        OptimizerChecks.RequireUniqueNames(_parameters, nameof(Muon));
        _momentum = _parameters.Select(p => new float[p.Data.Length]).ToArray();
    }

    public MuonOptions Options { get; }
    public IReadOnlyList<Parameter> Parameters => _parameters;
    public long StepCount { get; private set; }

    /// <summary>The factor Muon multiplies the orthogonalised update by for a [rows, cols] matrix: RmsScale·√max(rows, cols).</summary>
    public float UpdateScale(int rows, int cols) => Options.RmsScale * MathF.Sqrt(Math.Max(rows, cols));

    public void Step(float learningRate)
    {
        float mu = Options.Momentum;
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            float[] m = _momentum[i], g = p.Grad, w = p.Data;
            var u = new float[m.Length];
            for (int j = 0; j < m.Length; j++)
            {
                float mj = mu * m[j] + g[j];
                m[j] = mj;
                u[j] = Options.Nesterov ? g[j] + mu * mj : mj;
            }
            float[] o = NewtonSchulz.Orthogonalize(u, p.Rows, p.Cols, Options.NewtonSchulzSteps, Options.NewtonSchulzEpsilon);
            float step = learningRate * UpdateScale(p.Rows, p.Cols);
            float decay = 1f - learningRate * Options.WeightDecay;
            for (int j = 0; j < w.Length; j++) w[j] = w[j] * decay - step * o[j];
        }
        StepCount++;
    }

    public void SaveState(Stream stream)
    {
        using var w = OptimizerStateIO.Begin(stream, StateKind, StepCount);
        w.Write(_parameters.Length);
        for (int i = 0; i < _parameters.Length; i++) OptimizerStateIO.WriteBuffer(w, _parameters[i].Name + "#momentum", _momentum[i]);
    }

    public void LoadState(Stream stream)
    {
        using var r = OptimizerStateIO.Begin(stream, StateKind, out long step);
        int count = r.ReadInt32();
        if (count != _parameters.Length)
            throw new OptimizerStateException($"optimizer state: {count} parameters saved, this Muon has {_parameters.Length}");
        for (int i = 0; i < _parameters.Length; i++) OptimizerStateIO.ReadBuffer(r, _parameters[i].Name + "#momentum", _momentum[i]);
        StepCount = step;
    }
}
