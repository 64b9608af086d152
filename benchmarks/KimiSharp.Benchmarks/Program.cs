using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace KimiSharp.Benchmarks;

/// <summary>
/// Kernel micro-benchmarks. Run: <c>dotnet run -c Release --project benchmarks/KimiSharp.Benchmarks -- --filter '*'</c>
/// (add <c>--job short</c> for a quick pass). Every table has GB/s (weight and activation bytes touched) and GFLOP/s columns.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        var config = DefaultConfig.Instance
            .AddColumn(new ThroughputColumn("GB/s", Work.Bytes), new ThroughputColumn("GFLOP/s", Work.Flops));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
    }
}
