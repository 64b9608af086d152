// Compiled into the Jinja and Tokens test projects (linked, not referenced): both compare renders with Python
// Jinja2's fixtures, at one fixed clock.
namespace KimiSharp.Testing.Templates;

internal static class TextAssert
{
    /// <summary>Byte equality, with a failure message that points at the first difference.</summary>
    public static void Same(string expected, string actual)
    {
        if (expected == actual)
            return;
        int i = 0;
        while (i < expected.Length && i < actual.Length && expected[i] == actual[i])
            i++;
        int from = Math.Max(0, i - 60);
        string Context(string s) => System.Text.Json.JsonSerializer.Serialize(s.Substring(Math.Min(from, s.Length), Math.Min(140, Math.Max(0, s.Length - from))));
        Xunit.Assert.Fail($"Rendered text differs at offset {i} (expected length {expected.Length}, actual {actual.Length}).\n" +
                          $"expected: {Context(expected)}\nactual:   {Context(actual)}");
    }
}

/// <summary>A clock stuck at one local time (local zone = UTC so that GetLocalNow() returns it unchanged).</summary>
internal sealed class FixedTimeProvider(DateTime localNow) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => new(DateTime.SpecifyKind(localNow, DateTimeKind.Utc));
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
