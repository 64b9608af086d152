namespace KimiSharp.Training;

/// <summary>How an optimizer should treat a parameter (Moonlight/K2 recipe: Muon for 2-D hidden weights, AdamW for the rest).</summary>
public enum ParameterKind
{
    /// <summary>A 2-D hidden weight (attention and MLP projections): Muon.</summary>
    Matrix,
    /// <summary>Token embedding: AdamW.</summary>
    Embedding,
    /// <summary>Output projection (lm_head): AdamW.</summary>
    Head,
    /// <summary>RMSNorm gains: AdamW, no weight decay.</summary>
    Norm,
    /// <summary>MoE router weight: AdamW.</summary>
    Router,
    /// <summary>Biases (e.g. the router's expert-choice bias is not trained by gradients, but other biases are): AdamW, no weight decay.</summary>
    Bias,
}

/// <summary>
/// One trainable tensor in float32, row-major, with its gradient. <see cref="Name"/> is the Hugging Face tensor name
/// it is saved under (e.g. <c>model.layers.0.self_attn.q_proj.weight</c>), so a checkpoint loads in the inference engine.
/// </summary>
public sealed class Parameter(string name, int[] shape, ParameterKind kind)
{
    public string Name { get; } = name;
    /// <summary>[rows, cols] for matrices (stored [out, in] like nn.Linear), [n] for vectors.</summary>
    public int[] Shape { get; } = shape;
    public ParameterKind Kind { get; } = kind;
    public float[] Data { get; } = new float[shape.Aggregate(1L, (n, d) => n * d)];
    public float[] Grad { get; } = new float[shape.Aggregate(1L, (n, d) => n * d)];

    public int Rows => Shape[0];
    public int Cols => Shape.Length > 1 ? Shape[1] : 1;
    public long Count => Data.LongLength;

    public void ZeroGrad() => Array.Clear(Grad);
}
