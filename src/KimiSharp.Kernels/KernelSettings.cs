namespace KimiSharp.Kernels;

/// <summary>
/// How the matrix kernels run one caller's products: the activation precision and how many threads a product may
/// use. Passed to every kernel entry point that depends on it (a model carries its own and hands it down on whatever
/// thread runs its forward pass), so two models in one process never see each other's choice.
/// </summary>
public sealed record KernelSettings
{
    /// <summary>The exact float32 path on every core.</summary>
    public static KernelSettings Default { get; } = new();

    /// <summary>
    /// How activations enter INT4 products (<see cref="ActivationPrecision.Float32"/>: the exact reference path).
    /// Other weight formats always multiply float32 activations.
    /// </summary>
    public ActivationPrecision Activations
    {
        get;
        init => field = Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "not an activation precision");
    } = ActivationPrecision.Float32;

    /// <summary>Threads one product may use, the caller's included (default: every core).</summary>
    public int MaxThreads
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "at least one thread");
    } = Environment.ProcessorCount;

    /// <summary>Whether INT4 products quantize their activations to int8.</summary>
    public bool Int8Activations => Activations == ActivationPrecision.Int8;
}
