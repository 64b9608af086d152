using Spectre.Console;

namespace KimiSharp.Cli;

/// <summary>
/// What the CLI draws on a terminal, through Spectre.Console: progress bars and spinners for long work, and whether
/// colours are wanted. Output that is redirected or captured (a file, a pipe, a test's writer) gets none of it and stays
/// plain, parseable text; colours also honour NO_COLOR and a dumb TERM (Spectre's detection).
/// </summary>
internal static class Terminal
{
    /// <summary>A Spectre console over <paramref name="writer"/> when it is the process's interactive terminal; otherwise null.</summary>
    public static IAnsiConsole? Live(TextWriter writer)
    {
        bool terminal = ReferenceEquals(writer, Console.Error) ? !Console.IsErrorRedirected
            : ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected;
        if (!terminal) return null;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) });
        return console.Profile.Capabilities is { Ansi: true, Interactive: true } ? console : null;
    }

    /// <summary>Whether to colour text written to <paramref name="writer"/>: a live terminal with colours (not NO_COLOR).</summary>
    public static bool Colors(TextWriter writer) => Live(writer) is { Profile.Capabilities.ColorSystem: not ColorSystem.NoColors };

    /// <summary>A progress display with a bar, the count, the elapsed and the remaining time; cleared when done.</summary>
    public static Progress Bars(IAnsiConsole console) => console.Progress()
        .AutoClear(true)
        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
            new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn());

    /// <summary>Runs <paramref name="work"/> under a spinner labelled <paramref name="label"/> on a live terminal; plainly otherwise.</summary>
    public static T Spin<T>(TextWriter writer, string label, Func<T> work) =>
        Live(writer) is { } console ? console.Status().Start(Markup.Escape(label), _ => work()) : work();

    /// <summary>Columns of the process's terminal (80 when output is redirected or the width is unknown).</summary>
    public static int Width()
    {
        try
        {
            if (!Console.IsOutputRedirected && Console.WindowWidth > 0) return Console.WindowWidth;
        }
        catch (IOException) { }
        return 80;
    }

    /// <summary>Text for a progress description (Spectre reads descriptions as markup).</summary>
    public static string Plain(string text) => Markup.Escape(text);
}
