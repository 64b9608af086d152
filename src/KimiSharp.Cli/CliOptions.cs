using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace KimiSharp.Cli;

/// <summary>
/// Factories for the options the commands declare: each gives an option its type, value name, default and validation
/// once, so help, completion and error messages agree across verbs.
/// </summary>
internal static class CliOptions
{
    /// <summary>A required option with a string value (a path, a prompt).</summary>
    public static Option<string> Required(string name, string helpName, string description) =>
        new(name) { Description = description, HelpName = helpName, Required = true, CustomParser = r => Parse(r, text => text) };

    /// <summary>An optional string value; null when absent.</summary>
    public static Option<string?> Text(string name, string helpName, string description) =>
        new(name) { Description = description, HelpName = helpName, CustomParser = r => Parse<string?>(r, text => text) };

    /// <summary>A string value with a default.</summary>
    public static Option<string> Text(string name, string helpName, string description, string defaultValue) =>
        new(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => defaultValue, CustomParser = r => Parse(r, text => text) };

    /// <summary>
    /// A switch that takes no value: a word after it is the command's free argument where it has one
    /// (<c>kimi chat --int8 "question"</c>), else an error naming the switch.
    /// </summary>
    public static Option<bool> Flag(string name, string description) =>
        new(name) { Description = description, Arity = ArgumentArity.Zero };

    /// <summary>An integer with a default and a lower bound.</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int min = int.MinValue, string helpName = "N") =>
        new(name)
        {
            Description = description, HelpName = helpName, DefaultValueFactory = _ => defaultValue,
            CustomParser = r => Parse(r, text => ParseInt(name, text, min)),
        };

    /// <summary>An optional integer with a lower bound; null when absent.</summary>
    public static Option<int?> OptionalInt(string name, string description, int min = int.MinValue, string helpName = "N") =>
        new(name) { Description = description, HelpName = helpName, CustomParser = r => Parse<int?>(r, text => ParseInt(name, text, min)) };

    /// <summary>The common <c>--threads N</c>: worker threads for the kernels (default: every core).</summary>
    public static Option<int?> Threads() => OptionalInt("--threads", "Worker threads for the matrix kernels [default: all cores]", min: 1);

    /// <summary>A number with a default and an inclusive range.</summary>
    public static Option<double> Number(string name, string description, double defaultValue,
        double min = double.NegativeInfinity, double max = double.PositiveInfinity, string helpName = "X") =>
        new(name)
        {
            Description = description, HelpName = helpName, DefaultValueFactory = _ => defaultValue,
            CustomParser = r => Parse(r, text => ParseDouble(name, text, min, max)),
        };

    /// <summary>An optional number with an inclusive range; null when absent.</summary>
    public static Option<double?> OptionalNumber(string name, string description,
        double min = double.NegativeInfinity, double max = double.PositiveInfinity, string helpName = "X") =>
        new(name) { Description = description, HelpName = helpName, CustomParser = r => Parse<double?>(r, text => ParseDouble(name, text, min, max)) };

    /// <summary>One of a fixed set of words (completed by the shell), with a default.</summary>
    public static Option<string> Choice(string name, string description, string defaultValue, params string[] choices)
    {
        var option = new Option<string>(name)
        {
            Description = description, HelpName = string.Join('|', choices), DefaultValueFactory = _ => defaultValue,
            CustomParser = r => Parse(r, text => choices.Contains(text, StringComparer.Ordinal) ? text
                : throw new UsageException($"{name} must be {OneOf(choices)}, got '{text}'")),
        };
        option.CompletionSources.Add(choices);
        return option;
    }

    /// <summary>A value parsed by <paramref name="parse"/>, whose <see cref="UsageException"/> becomes a parse error.</summary>
    public static Option<T?> Parsed<T>(string name, string helpName, string description, Func<string, T> parse) =>
        new(name) { Description = description, HelpName = helpName, Arity = ArgumentArity.ExactlyOne, CustomParser = r => Parse<T?>(r, text => parse(text)) };

    /// <summary>Rejects a command line that gives both options.</summary>
    public static void Exclusive(this Command command, Option a, Option b, string? message = null) =>
        command.Validators.Add(r =>
        {
            if (r.GetResult(a) is { Implicit: false } && r.GetResult(b) is { Implicit: false })
                r.AddError(message ?? $"give {a.Name} or {b.Name}, not both");
        });

    public static int ParseInt(string name, string text, int min = int.MinValue)
    {
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            throw new UsageException($"{name} must be an integer, got '{text}'");
        return value >= min ? value : throw new UsageException($"{name} must be at least {min}, got {value}");
    }

    public static double ParseDouble(string name, string text, double min, double max)
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            throw new UsageException($"{name} must be a number, got '{text}'");
        if (value < min || value > max)
            throw new UsageException(double.IsPositiveInfinity(max) ? $"{name} must be at least {min.ToString(CultureInfo.InvariantCulture)}, got {text}"
                : $"{name} must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}, got {text}");
        return value;
    }

    private static string OneOf(string[] choices) =>
        choices.Length == 1 ? choices[0] : string.Join(", ", choices[..^1]) + " or " + choices[^1];

    /// <summary>Parses the option's last token; a <see cref="UsageException"/> from <paramref name="parse"/> becomes its parse error.</summary>
    private static T Parse<T>(ArgumentResult result, Func<string, T> parse)
    {
        if (result.Tokens.Count == 0) return default!; // absent or value missing: the parser's own arity check reports it
        try { return parse(result.Tokens[^1].Value); }
        catch (UsageException e)
        {
            result.AddError(e.Message);
            return default!;
        }
    }
}

/// <summary>The writers a command prints to, as the invocation gave them (tests capture them).</summary>
internal static class ParseResultWriters
{
    public static TextWriter Out(this ParseResult result) => result.InvocationConfiguration.Output;
    public static TextWriter Err(this ParseResult result) => result.InvocationConfiguration.Error;
}
