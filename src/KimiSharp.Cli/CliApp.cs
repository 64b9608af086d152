using KimiSharp.Model.Configuration;
using KimiSharp.Model.Layers;
using KimiSharp.Model.Safetensors;

namespace KimiSharp.Cli;

/// <summary>The <c>kimi</c> command line: dispatches to one command per verb.</summary>
public static class CliApp
{
    public const string Usage = """
        kimi — Kimi K2 family models in .NET

        Usage:
          kimi logits --model DIR --tokens 1,2,3 --out FILE [--incremental] [--threads N]
              Run the model over the token ids and write little-endian float32 logits [tokens, vocab].
              --incremental feeds the tokens one at a time through the KV cache.
          kimi chat [--model DIR] ["one question"] [--no-tools] [--max-tokens N] [--temperature T] [--system TEXT]
                    [--seed N] [--max-steps N]
              Chat in the terminal (thinking shown dimmed; /reset, /thinking, /exit), or answer one question.
              By default the model may call the built-in tools (calculator, convert_units, calendar, lookup, memory),
              run by the agent loop: calls show as → name(args), results as ← result. Tool mode is greedy with
              384 tokens per step unless --temperature/--max-tokens say otherwise; --max-steps caps the steps (400).
              --no-tools: plain chat (temperature 0.6, 1024 tokens by default).
          kimi eval --suite tool-use [--model DIR] [--horizons 1,3,10,50,100,300] [--tasks N] [--seed 777]
                    [--out report.json] [--transcripts runs.jsonl] [--max-steps N] [--max-tokens N]
              Run held-out tool-use tasks by horizon (planned tool calls) through the agent loop and print success
              rate, tool calls, malformed-call rate and tokens per horizon as a markdown table; --out writes JSON;
              --transcripts writes one JSON line per task (prompt, expected, outcome, answer, conversation).
              Tasks per horizon default to 50 (h ≤ 3), 20 (≤ 10), 30 (≤ 50), 10 (≤ 100), 5 (beyond).
          kimi generate [--model DIR] --prompt TEXT [--max-tokens N] [--temperature T] [--seed N]
              Raw text completion, no chat template.
          kimi serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--name ID]
              OpenAI- and Anthropic-compatible HTTP server (/v1/chat/completions, /v1/messages, …).
              chat, generate and serve take --int8: INT4 weights multiply int8-quantized activations (repacked at load),
              the fast mode kimi bench measures, within quantization error of the exact float32 default.
          kimi chat-template --messages FILE.json [--tools FILE.json] [--template FILE.jinja | --model DIR]
                             [--var name=json ...] [--no-generation-prompt]
              Print the prompt a chat template renders for a conversation.
          kimi train --config FILE [--resume | --export-state DIR]
              Train a K2-architecture model (MuonClip, Muon or AdamW) from text/JSONL; Hugging Face checkpoints out.
          kimi synthesize --out DIR [--count 20000] [--seed N] [--window 4] [--max-chunks 3] [--flaw-rate 0.08] [--max-cities 150] [--long-share 0.3]
                          [--template chat_template.jinja] [--recall N]
              Agentic training data: tool-use tasks with verifiable answers, teacher trajectories through the real
              tools, a rubric filter (report.md says what it rejected), rendered examples for kimi train.
              --recall N also writes recall.txt: N plain-text copy/recall warm-up documents (text_files for kimi train).
          kimi rl --config SFT.json --from RUN --out DIR [--iterations 2] [--tasks 24] [--samples 4] [--steps 4]
                  [--lr 0.0005] [--temperature 0.8] [--budget 3000] [--eval-tasks 12] [--horizons 1,2,3]
              Policy-gradient stage on a finished kimi train run: sampled tool-use trajectories, reward = task
              success, advantage = reward − the task's mean; reports greedy success before and after, by horizon.
          kimi quantize --model DIR --out DIR [--quant int4|fp8|bf16]
              Post-training quantization to K2 Thinking's INT4 (routed experts) or DeepSeek-V3's FP8 block format.
          kimi export-gguf --model DIR --out FILE.gguf [--quant q4_0|f32]
              Write the model as a GGUF file in llama.cpp's deepseek2 layout (Q4_0 or F32 weights, placeholder vocab),
              so ik_llama.cpp / llama.cpp can be benchmarked on the same weights.
          kimi perplexity --model DIR --text FILE [--window 512]
              Mean loss and perplexity of a model on a text file.
          kimi info --model DIR
              Print the model's architecture, weight formats and size.
          kimi bench --model DIR [--threads N] [--prompt 512] [--gen 64] [--rounds 3] [--float32] [--profile]
              Prefill and decode tokens/s, weight bytes per decoded token, measured memory bandwidth, roofline fraction.
              Measures int8 activations on repacked INT4 weights (the fast mode, as llama.cpp's quantized kernels run);
              --float32 measures the exact float32 path instead.
              --profile adds the time spent in each part of the forward pass (attention, experts, lm_head, …).
          kimi init-random --config FILE --out DIR [--quant int4|int4-all|fp8|bf16] [--seed N] [--shard-mb N] [--tokenizer bytes]
              Write a random-weight checkpoint of the config.json-style shape in FILE (int4: routed experts INT4);
              --tokenizer bytes adds a byte-level Kimi tokenizer so chat and serve work on it.
          kimi --help | --version

        A model folder is a Hugging Face checkpoint: config.json plus model.safetensors or sharded
        model-*.safetensors with model.safetensors.index.json (BF16/F16/F32, FP8 block, INT4 compressed-tensors).
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            stdout.WriteLine(Usage);
            return args.Length == 0 ? 1 : 0;
        }
        if (args[0] is "--version")
        {
            stdout.WriteLine(typeof(CliApp).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
            return 0;
        }
        try
        {
            var options = CommandLine.Parse(args.AsSpan(1));
            if (options.Has("help")) { stdout.WriteLine(Usage); return 0; }
            switch (args[0])
            {
                case "logits": return await LogitsCommand.RunAsync(options, stdout, stderr, cancellationToken);
                case "info": return InfoCommand.Run(options, stdout, stderr);
                case "chat": return await ChatCommand.RunAsync(options, stdout, stderr, cancellationToken);
                case "eval": return await EvalCommand.RunAsync(options, stdout, stderr, cancellationToken);
                case "generate": return await GenerateCommand.RunAsync(options, stdout, stderr, cancellationToken);
                case "serve": return await ServeCommand.RunAsync(options, stdout, stderr, cancellationToken);
                case "chat-template": return ChatTemplateCommand.Run(options, stdout, stderr);
                case "quantize": return QuantizeCommand.Quantize(options, stdout);
                case "perplexity": return QuantizeCommand.Perplexity(options, stdout, cancellationToken);
                case "export-gguf": return ExportGgufCommand.Run(options, stdout, stderr, cancellationToken);
                case "train": return TrainCommand.Run(options, stdout, stderr, cancellationToken);
                case "synthesize": return SynthesizeCommand.Run(options, stdout, cancellationToken);
                case "rl": return await RlCommand.RunAsync(options, stdout, cancellationToken);
                case "bench": return BenchCommand.Run(options, stdout, stderr, cancellationToken);
                case "init-random": return InitRandomCommand.Run(options, stdout, stderr);
                default:
                    stderr.WriteLine($"kimi: unknown command '{args[0]}'. Run 'kimi --help' for the list.");
                    return 2;
            }
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"kimi {args[0]}: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ModelConfigException or CheckpointFormatException or ContextLengthExceededException
            or IOException or UnauthorizedAccessException or ArgumentException or System.Text.Json.JsonException or FormatException
            or KimiSharp.Jinja.TemplateException or KimiSharp.Tokens.Tokenization.TokenizerFormatException
            or KimiSharp.Engine.RequestTooLargeException)
        {
            stderr.WriteLine($"kimi {args[0]}: error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine($"kimi {args[0]}: cancelled");
            return 130;
        }
    }
}

/// <summary>A command line that does not make sense; exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>--name value and --flag options.</summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, List<string?>> _values = new(StringComparer.Ordinal);
    public List<string> Positional { get; } = [];

    public static CommandLine Parse(ReadOnlySpan<string> args)
    {
        var result = new CommandLine();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) { result.Positional.Add(a); continue; }
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) value = args[++i];
            if (!result._values.TryGetValue(name, out var list)) result._values[name] = list = [];
            list.Add(value);
        }
        return result;
    }

    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>
    /// Whether the value-less option --<paramref name="name"/> was given. A word the parser took for its value
    /// ("--int8 question") becomes a free argument where the command accepts those, else a usage error.
    /// </summary>
    public bool Flag(string name)
    {
        if (!_values.TryGetValue(name, out var values)) return false;
        foreach (var value in values)
        {
            if (value is null) continue;
            if (!_allowPositional) throw new UsageException($"--{name} takes no value (got '{value}')");
            Positional.Add(value);
        }
        values.RemoveAll(v => v is not null);
        return true;
    }

    public string? Get(string name) => _values.TryGetValue(name, out var v) ? v[^1] : null;

    /// <summary>Every value given for a repeatable option, in order.</summary>
    public IReadOnlyList<string> GetAll(string name) =>
        _values.TryGetValue(name, out var v) ? v.Select(x => x ?? throw new UsageException($"--{name} needs a value")).ToArray() : [];

    public double? Double(string name)
    {
        string? v = Get(name);
        if (v is null) return Has(name) ? throw new UsageException($"--{name} needs a value") : null;
        return double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d)
            ? d : throw new UsageException($"--{name} must be a number, got '{v}'");
    }

    public string Require(string name) =>
        Get(name) ?? throw new UsageException(Has(name) ? $"--{name} needs a value" : $"missing --{name}");

    public int? Int(string name)
    {
        string? v = Get(name);
        if (v is null) return Has(name) ? throw new UsageException($"--{name} needs a value") : null;
        return int.TryParse(v, out int i) ? i : throw new UsageException($"--{name} must be an integer, got '{v}'");
    }

    /// <summary>Rejects options the command does not know, so a typo is not silently ignored.</summary>
    private bool _allowPositional;

    /// <summary>Accepts free arguments (e.g. the question of <c>kimi chat "…"</c>).</summary>
    public CommandLine AllowPositional() { _allowPositional = true; return this; }

    public void AllowOnly(params string[] names)
    {
        foreach (var key in _values.Keys)
            if (!names.Contains(key)) throw new UsageException($"unknown option --{key}");
        if (Positional.Count > 0 && !_allowPositional) throw new UsageException($"unexpected argument '{Positional[0]}'");
    }
}
