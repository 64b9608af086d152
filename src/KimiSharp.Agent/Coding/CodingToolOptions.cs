namespace KimiSharp.Agent.Coding;

/// <summary>Limits and switches for the built-in coding tools (<see cref="CodingTools.Create"/>).</summary>
public sealed record CodingToolOptions
{
    /// <summary>Most characters any one tool result may hold before it is cut with a note.</summary>
    public int MaxOutputChars { get; init; } = 50_000;

    /// <summary>Lines read_file returns when the call gives no limit.</summary>
    public int DefaultReadLines { get; init; } = 2000;

    /// <summary>Longer lines are cut in read_file and grep output.</summary>
    public int MaxLineLength { get; init; } = 2000;

    /// <summary>Files larger than this are refused by read_file, edit_file and skipped by grep.</summary>
    public long MaxFileBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>Timeout of a shell command when the call does not give one.</summary>
    public TimeSpan ShellTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Upper bound on a timeout the model may ask for.</summary>
    public TimeSpan MaxShellTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Host names (exact, case-insensitive) fetch may reach besides loopback.</summary>
    public IReadOnlyList<string> FetchAllowedHosts { get; init; } = [];

    public TimeSpan FetchTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Most response bytes fetch reads; the rest is dropped with a note.</summary>
    public int FetchMaxBytes { get; init; } = 1024 * 1024;

    /// <summary>Folder of .md/.txt documents search_docs indexes; null leaves search_docs out.</summary>
    public string? DocsFolder { get; init; }

    /// <summary>Per-match timeout of the regular expressions grep runs (guards against catastrophic backtracking).</summary>
    public TimeSpan RegexTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public int MaxGrepMatches { get; init; } = 200;

    public int MaxGlobResults { get; init; } = 500;

    public int MaxListEntries { get; init; } = 1000;

    /// <summary>Directory names glob and grep do not descend into.</summary>
    public IReadOnlyList<string> IgnoredDirectories { get; init; } = [".git", "node_modules", "bin", "obj"];
}
