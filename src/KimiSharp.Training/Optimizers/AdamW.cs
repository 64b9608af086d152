namespace KimiSharp.Training.Optimizers;

/// <summary>AdamW hyper-parameters. Defaults follow the K2/Moonlight recipe (β = 0.9/0.95, weight decay 0.1).</summary>
public sealed record AdamWOptions
{
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float Epsilon { get; init; } = 1e-8f;
    /// <summary>Decoupled weight decay λ: p ← p·(1 − lr·λ) before the Adam step. Never applied to Norm or Bias parameters.</summary>
    public float WeightDecay { get; init; } = 0.1f;
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) with bias correction and decoupled weight decay:
/// m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1 − lr·λ) − lr·m̂/(√v̂ + ε), m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ).
/// Parameters of kind <see cref="ParameterKind.Norm"/> and <see cref="ParameterKind.Bias"/> get no weight decay.
/// </summary>
public sealed class AdamW : IOptimizer
{
    private const string StateKind = "AdamW";
    private readonly Parameter[] _parameters;
    private readonly float[][] _m;
    private readonly float[][] _v;

    public AdamW(IEnumerable<Parameter> parameters, AdamWOptions? options = null)
    {
        _parameters = parameters.ToArray();
        Options = options ?? new AdamWOptions();
        if (Options.Beta1 is < 0 or >= 1 || Options.Beta2 is < 0 or >= 1)
            throw new ArgumentException("AdamW: betas must be in [0, 1)");
        if (!(Options.Epsilon > 0)) throw new ArgumentException("AdamW: epsilon must be positive");
        OptimizerChecks.RequireUniqueNames(_parameters, nameof(AdamW));
        _m = _parameters.Select(p => new float[p.Data.Length]).ToArray();
        _v = _parameters.Select(p => new float[p.Data.Length]).ToArray();
    }

    public AdamWOptions Options { get; }
    public IReadOnlyList<Parameter> Parameters => _parameters;
    public long StepCount { get; private set; }

    /// <summary>Whether weight decay applies to a parameter of this kind.</summary>
    public static bool Decays(ParameterKind kind) => kind is not (ParameterKind.Norm or ParameterKind.Bias);

    public void Step(float learningRate)
    {
        long t = StepCount + 1;
        float beta1 = Options.Beta1, beta2 = Options.Beta2, eps = Options.Epsilon;
        // Bias corrections in double, rounded once to float so that every element sees the same constants.
        float c1 = (float)(1.0 / (1.0 - Math.Pow(beta1, t)));
        float c2 = (float)(1.0 / (1.0 - Math.Pow(beta2, t)));
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            float decay = Decays(p.Kind) ? 1f - learningRate * Options.WeightDecay : 1f;
            Update(p.Data, p.Grad, _m[i], _v[i], learningRate, beta1, beta2, eps, c1, c2, decay);
        }
        StepCount = t;
    }

    private static void Update(float[] data, float[] grad, float[] m, float[] v, float lr,
        float beta1, float beta2, float eps, float c1, float c2, float decay)
    {
        const int Chunk = 1 << 15;
        int chunks = (data.Length + Chunk - 1) / Chunk;
        void Body(int c)
        {
            int start = c * Chunk, end = Math.Min(data.Length, start + Chunk);
            float ob1 = 1f - beta1, ob2 = 1f - beta2;
            for (int j = start; j < end; j++)
            {
                float g = grad[j];
                float mj = beta1 * m[j] + ob1 * g;
                float vj = beta2 * v[j] + ob2 * (g * g);
                m[j] = mj;
                v[j] = vj;
                float mhat = mj * c1, vhat = vj * c2;
                data[j] = data[j] * decay - lr * (mhat / (MathF.Sqrt(vhat) + eps));
            }
        }
        // Element-wise, so the result does not depend on how the chunks are scheduled.
        if (chunks == 1) Body(0);
        else Parallel.For(0, chunks, Body);
    }

    public void SaveState(Stream stream)
    {
        using var w = OptimizerStateIO.Begin(stream, StateKind, StepCount);
        w.Write(_parameters.Length);
        for (int i = 0; i < _parameters.Length; i++)
        {
            OptimizerStateIO.WriteBuffer(w, _parameters[i].Name + "#m", _m[i]);
            OptimizerStateIO.WriteBuffer(w, _parameters[i].Name + "#v", _v[i]);
        }
    }

    public void LoadState(Stream stream)
    {
        using var r = OptimizerStateIO.Begin(stream, StateKind, out long step);
        int count = r.ReadInt32();
        if (count != _parameters.Length)
            throw new OptimizerStateException($"optimizer state: {count} parameters saved, this AdamW has {_parameters.Length}");
        for (int i = 0; i < _parameters.Length; i++)
        {
            OptimizerStateIO.ReadBuffer(r, _parameters[i].Name + "#m", _m[i]);
            OptimizerStateIO.ReadBuffer(r, _parameters[i].Name + "#v", _v[i]);
        }
        StepCount = step;
    }
}

internal static class OptimizerChecks
{
    public static void RequireUniqueNames(IEnumerable<Parameter> parameters, string owner)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in parameters)
            if (!seen.Add(p.Name)) throw new ArgumentException($"{owner}: parameter '{p.Name}' appears twice");
    }
}
