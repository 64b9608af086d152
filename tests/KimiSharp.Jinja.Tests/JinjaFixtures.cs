using System.Runtime.CompilerServices;

namespace KimiSharp.Jinja.Tests;

/// <summary>Locates Fixtures/ (kept next to this source file, read at test time; no copy to bin needed).</summary>
internal static class JinjaFixtures
{
    public static string Root { get; } = FindRoot();

    /// <summary>The instant render_with_jinja2.py gives strftime_now (naive local time).</summary>
    public static readonly DateTime FixedNow = new DateTime(2025, 1, 2, 3, 4, 5, DateTimeKind.Unspecified).AddTicks(6_789_010);

    public static JinjaOptions JinjaOptions { get; } = new() { TimeProvider = new FixedTimeProvider(FixedNow) };

    public static string ReadText(string path) => File.ReadAllText(path, System.Text.Encoding.UTF8);

    /// <summary>Byte equality, with a failure message that points at the first difference.</summary>
    public static void AssertSameText(string expected, string actual)
    {
        if (expected == actual)
            return;
        int i = 0;
        while (i < expected.Length && i < actual.Length && expected[i] == actual[i])
            i++;
        int from = Math.Max(0, i - 60);
        string Context(string s) => System.Text.Json.JsonSerializer.Serialize(s.Substring(Math.Min(from, s.Length), Math.Min(140, Math.Max(0, s.Length - from))));
        Assert.Fail($"Rendered text differs at offset {i} (expected length {expected.Length}, actual {actual.Length}).\n" +
                    $"expected: {Context(expected)}\nactual:   {Context(actual)}");
    }

    private static string FindRoot([CallerFilePath] string sourceFile = "")
    {
        // The source path is baked in at compile time; fall back to walking up from the test binaries.
        string candidate = Path.Combine(Path.GetDirectoryName(sourceFile) ?? "", "Fixtures");
        if (Directory.Exists(candidate))
            return candidate;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string probe = Path.Combine(dir.FullName, "tests", "KimiSharp.Jinja.Tests", "Fixtures");
            if (Directory.Exists(probe))
                return probe;
        }
        throw new DirectoryNotFoundException("Cannot find tests/KimiSharp.Jinja.Tests/Fixtures.");
    }
}

/// <summary>A clock stuck at one local time (local zone = UTC so that GetLocalNow() returns it unchanged).</summary>
internal sealed class FixedTimeProvider(DateTime localNow) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => new(DateTime.SpecifyKind(localNow, DateTimeKind.Utc));
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
