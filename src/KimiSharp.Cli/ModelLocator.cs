using System.CommandLine;
using KimiSharp.Engine;
using KimiSharp.Engine.Chat;
using KimiSharp.Kernels;
using KimiSharp.Model;

namespace KimiSharp.Cli;

/// <summary>Finds the model folder a command should use and loads it (with a progress bar on a terminal).</summary>
internal static class ModelLocator
{
    /// <summary>Where the project's own default model lives, relative to the repository root.</summary>
    public const string DefaultModelPath = "models/k2-nano";

    /// <summary><c>--model DIR</c> where it may be left out (chat, generate, serve, eval): then KIMI_MODEL or the checkout's default.</summary>
    public static Option<string?> ModelOption() =>
        CliOptions.Text("--model", "DIR", $"The model folder [default: $KIMI_MODEL, else {DefaultModelPath} in this checkout]");

    /// <summary><c>--name ID</c>: the model id the APIs report.</summary>
    public static Option<string?> NameOption() => CliOptions.Text("--name", "ID", "The model id to report [default: the folder's name]");


    public static string Resolve(string? given)
    {
        if (given is not null) return given;
        if (Environment.GetEnvironmentVariable("KIMI_MODEL") is { Length: > 0 } fromEnv) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, DefaultModelPath);
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        }
        throw new UsageException(
            $"no model given and the default model ({DefaultModelPath}) is not in this checkout yet. " +
            "Pass --model DIR, a Hugging Face folder with config.json, *.safetensors, tiktoken.model and tokenizer_config.json " +
            "(or set KIMI_MODEL).");
    }

    /// <summary>Loads a chat model whose forward passes run with <paramref name="kernels"/> (on the engine's thread too).</summary>
    public static KimiChatService LoadChat(string? model, string? name, TextWriter stderr, KernelSettings kernels,
        EngineOptions? engine = null)
    {
        string dir = Resolve(model);
        string label = $"loading {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)))}";
        var load = new KimiModelLoadOptions { Kernels = kernels };
        if (Terminal.Live(stderr) is not { } console) return KimiChatService.Load(dir, engine, name, loadOptions: load);
        return Terminal.Bars(console).Start(context =>
        {
            var task = context.AddTask(Terminal.Plain(label), maxValue: 1);
            return KimiChatService.Load(dir, engine, name, loadOptions: load, progress: new SyncProgress<LoadProgress>(p =>
            {
                if (p.Total <= 0) return;
                task.Description = Terminal.Plain($"{label}: {p.Stage}");
                task.MaxValue = p.Total;
                task.Value = p.Done;
            }));
        });
    }
}

/// <summary>
/// <c>--threads</c>, <c>--int8</c> and <c>--exact</c> of the commands that load a model to serve it (chat, generate,
/// serve, eval): the kernel settings the model is loaded with, which it applies on whatever thread runs it.
/// </summary>
internal sealed class KernelOptions
{
    /// <summary>
    /// How activations enter INT4 products when neither flag is given. Int8: on the shipped and golden models it costs
    /// far less perplexity than the threshold the project set for it (0.5 % relative; see the README's measurements),
    /// and it is what <c>kimi bench</c> measures. Models without INT4 weights compute the same either way.
    /// </summary>
    public const ActivationPrecision ServingDefault = ActivationPrecision.Int8;

    public Option<int?> Threads { get; } = CliOptions.Threads();

    public Option<bool> Int8 { get; } = CliOptions.Flag("--int8",
        "INT4 weights multiply int8-quantized activations, repacked at load (the default; the speed kimi bench measures)");

    public Option<bool> Exact { get; } = CliOptions.Flag("--exact",
        "The exact float32 reference path: INT4 weights decoded and multiplied with float32 activations");

    /// <summary>Adds the three options (and the check that <c>--int8</c> and <c>--exact</c> exclude each other).</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Threads);
        command.Options.Add(Int8);
        command.Options.Add(Exact);
        command.Exclusive(Int8, Exact, "--int8 and --exact exclude each other");
    }

    public KernelSettings Settings(ParseResult result) => Settings(result.GetValue(Threads), result.GetValue(Int8), result.GetValue(Exact));

    /// <summary>The settings the flags ask for; neither flag: <see cref="ServingDefault"/>.</summary>
    public static KernelSettings Settings(int? threads = null, bool int8 = false, bool exact = false)
    {
        if (int8 && exact) throw new UsageException("--int8 and --exact exclude each other");
        var settings = new KernelSettings
        {
            Activations = exact ? ActivationPrecision.Float32 : int8 ? ActivationPrecision.Int8 : ServingDefault,
        };
        return threads is int count ? settings with { MaxThreads = count } : settings;
    }
}
