using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace KimiSharp.Benchmarks;

/// <summary>A column of per-operation work (bytes or flops) divided by the mean time: bytes/ns = GB/s, flop/ns = GFLOP/s.</summary>
public sealed class ThroughputColumn(string name, Func<BenchmarkCase, double> perOperation) : IColumn
{
    public string Id => "Throughput." + name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => $"{name} from the mean time and the operation's {(name.StartsWith("GB") ? "bytes" : "floating-point operations")}";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        double work = perOperation(benchmarkCase);
        if (stats is null || work <= 0) return "-";
        return (work / stats.Mean).ToString("F1");
    }

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
}

/// <summary>Work per benchmark invocation, from the benchmark's own description of itself.</summary>
public static class Work
{
    public static double Bytes(BenchmarkCase c) => Describe(c).Bytes;
    public static double Flops(BenchmarkCase c) => Describe(c).Flops;

    private static (double Bytes, double Flops) Describe(BenchmarkCase c)
    {
        var instance = Activator.CreateInstance(c.Descriptor.Type);
        if (instance is not IDescribesWork describer) return (0, 0);
        foreach (var p in c.Parameters.Items)
            c.Descriptor.Type.GetProperty(p.Name)?.SetValue(instance, p.Value);
        return describer.Work(c.Descriptor.WorkloadMethod.Name);
    }
}

/// <summary>Benchmarks report the bytes they touch and the flops they perform per invocation (without running setup).</summary>
public interface IDescribesWork
{
    (double Bytes, double Flops) Work(string method);
}
