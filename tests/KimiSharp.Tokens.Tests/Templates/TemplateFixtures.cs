using KimiSharp.Testing.Templates;
using System.Runtime.CompilerServices;
using KimiSharp.Jinja;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Tokens.Tests.Templates;

/// <summary>Locates the fixture files (kept next to this source file, read at test time; no copy to bin needed).</summary>
internal static class TemplateFixtures
{
    public static string Root { get; } = FindRoot();

    public static string TemplatesDir => Path.Combine(Root, "templates");
    public static string ConversationsDir => Path.Combine(Root, "conversations");
    public static string ExpectedDir => Path.Combine(Root, "expected");

    /// <summary>The instant render_with_jinja2.py gives strftime_now (naive local time).</summary>
    public static readonly DateTime FixedNow = new DateTime(2025, 1, 2, 3, 4, 5, DateTimeKind.Unspecified).AddTicks(6_789_010);

    public static JinjaOptions JinjaOptions { get; } = new() { TimeProvider = new FixedTimeProvider(FixedNow) };

    /// <summary>The variables render_with_jinja2.py passes besides the conversation.</summary>
    public static ChatTemplateOptions ChatOptions { get; } = new() { BosToken = "[BOS]", EosToken = "[EOS]", Jinja = JinjaOptions };

    public static string ReadText(string path) => File.ReadAllText(path, System.Text.Encoding.UTF8);

    private static string FindRoot([CallerFilePath] string sourceFile = "")
    {
        // The source path is baked in at compile time; fall back to walking up from the test binaries.
        string candidate = Path.Combine(Path.GetDirectoryName(sourceFile) ?? "", "Fixtures");
        if (Directory.Exists(candidate))
            return candidate;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string probe = Path.Combine(dir.FullName, "tests", "KimiSharp.Tokens.Tests", "Templates", "Fixtures");
            if (Directory.Exists(probe))
                return probe;
        }
        throw new DirectoryNotFoundException("Cannot find tests/KimiSharp.Tokens.Tests/Templates/Fixtures.");
    }
}
