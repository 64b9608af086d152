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

    /// <summary><c>--int8</c> for chat, generate and serve.</summary>
    public static Option<bool> Int8Option() => CliOptions.Flag("--int8",
        "INT4 weights multiply int8-quantized activations (repacked at load): the fast mode kimi bench measures, within quantization error of the exact float32 default");

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

    public static KimiChatService LoadChat(string? model, string? name, TextWriter stderr, ActivationPrecision activations,
        EngineOptions? engine = null)
    {
        string dir = Resolve(model);
        string label = $"loading {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)))}";
        var load = new KimiModelLoadOptions { Activations = activations };
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

    /// <summary>The activation precision <c>--int8</c> asks for: the model carries it to whichever thread runs it.</summary>
    public static ActivationPrecision Activations(bool int8) => int8 ? ActivationPrecision.Int8 : ActivationPrecision.Float32;
}
