using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using KimiSharp.Model.Configuration;
using KimiSharp.Model.Safetensors;
using KimiSharp.Tokens.Templates;
using KimiSharp.Tokens.Tokenization;
using KimiSharp.Training.Optimizers;
using KimiSharp.Training.Tokenizer;

namespace KimiSharp.Training.Runs;

/// <summary>One logged training step.</summary>
public sealed record StepMetrics(int Step, float Loss, float LearningRate, double TokensPerSecond, float MaxAttentionLogit,
    int HeadsClipped, float ExpertMaxViolation);

/// <summary>
/// Runs <c>kimi train</c>: tokenizer (loaded or trained), model, optimizer (MuonClip, Muon or AdamW), schedule, the
/// step loop with QK-Clip and expert-bias balancing, metrics CSV, Hugging Face checkpoints, and bit-exact resume.
/// </summary>
public sealed class Trainer
{
    private readonly TrainConfig _config;
    private readonly IProgress<StepMetrics>? _progress;

    public Trainer(TrainConfig config, IProgress<StepMetrics>? progress = null)
    {
        _config = config;
        _progress = progress;
    }

    public string StateDirectory => Path.Combine(_config.OutputDirectory, "state");
    public string FinalDirectory => Path.Combine(_config.OutputDirectory, "final");

    /// <summary>Where the model after <paramref name="steps"/> steps is exported when <see cref="TrainConfig.SnapshotEvery"/> asks for it.</summary>
    public string SnapshotDirectory(int steps) => Path.Combine(_config.OutputDirectory, $"step-{steps}");
    public string MetricsPath => Path.Combine(_config.OutputDirectory, "metrics.csv");

    /// <summary>The trained model after <see cref="Run"/> (for tests and export).</summary>
    public TrainableModel? Model { get; private set; }

    /// <summary>
    /// Trains to <see cref="TrainConfig.Steps"/>, or resumes from the saved state. Stops early (with the state saved)
    /// when cancelled. Returns the number of the last completed step.
    /// </summary>
    public int Run(bool resume, CancellationToken cancellationToken = default)
    {
        var c = _config;
        Directory.CreateDirectory(c.OutputDirectory);
        string tokenizerDir = Path.Combine(c.OutputDirectory, "tokenizer");
        if (!resume || !File.Exists(Path.Combine(tokenizerDir, "tiktoken.model"))) PrepareTokenizer(tokenizerDir, cancellationToken);
        if (c.ChatTemplateFile is { } chatTemplate) File.Copy(chatTemplate, Path.Combine(tokenizerDir, "chat_template.jinja"), overwrite: true);
        var tokenizer = KimiTokenizer.FromModelDirectory(tokenizerDir);
        var template = ChatTemplate.FromModelDirectory(tokenizerDir);
        var modelConfig = c.Model with { VocabSize = tokenizer.VocabSize };
        var data = new TrainingData(c, tokenizer, template);

        var model = new TrainableModel(modelConfig, c.Seed) { BalanceLossAlpha = c.BalanceLossAlpha };
        Model = model;
        var matrices = model.Parameters.Where(p => p.Kind == ParameterKind.Matrix).ToArray();
        var others = model.Parameters.Where(p => p.Kind != ParameterKind.Matrix).ToArray();
        Muon? muon = c.Optimizer == "adamw" ? null : new Muon(matrices, new MuonOptions { WeightDecay = c.WeightDecay });
        var adam = new AdamW(c.Optimizer == "adamw" ? model.Parameters : others, new AdamWOptions { WeightDecay = c.WeightDecay });
        var balancer = new ExpertBiasBalancer(c.ExpertBiasRate);
        var schedule = c.Schedule switch
        {
            "constant" => LearningRateSchedule.Constant(1f, c.WarmupSteps),
            "wsd" => LearningRateSchedule.WarmupStableDecay(1f, c.WarmupSteps, c.Steps, c.DecayFraction, c.MinLearningRateFraction),
            _ => LearningRateSchedule.Cosine(1f, c.WarmupSteps, c.Steps, c.MinLearningRateFraction),
        };

        int firstStep = 0;
        if (resume && LoadState(model, muon, adam) is int saved) firstStep = saved + 1;
        else if (c.InitFrom is { } init) LoadInitialWeights(model, init);
        else if (File.Exists(MetricsPath)) File.Delete(MetricsPath);
        if (!File.Exists(MetricsPath))
            File.WriteAllText(MetricsPath, "step,loss,lr,tokens_per_s,max_attention_logit,heads_clipped,expert_max_violation\n");
        // A resumed run rewrites the metrics of steps after the saved state (they were lost with the process).
        TruncateMetrics(firstStep);

        int last = firstStep - 1;
        var clock = new Stopwatch();
        for (int step = firstStep; step < c.Steps; step++)
        {
            if (cancellationToken.IsCancellationRequested) break;
            clock.Restart();
            var (inputs, targets, mask, rows, seq) = c.Bucket
                ? data.BucketBatch(step, c.BatchSize * c.SequenceLength, c.SequenceLength, c.Seed)
                : (data.Batch(step, c.BatchSize, c.SequenceLength, c.Seed) is var (i, t, m) ? (i, t, m, c.BatchSize, c.SequenceLength) : default);
            model.ZeroGrad();
            float loss = model.Forward(inputs, rows, seq, targets, mask);
            if (!float.IsFinite(loss)) throw new InvalidOperationException($"step {step}: the loss is {loss}; lower the learning rate");
            model.Backward();
            float factor = schedule.At(step);
            muon?.Step(c.LearningRate * factor);
            adam.Step((c.Optimizer == "adamw" ? c.LearningRate : c.AdamLearningRate) * factor);
            var maxLogits = model.MaxAttentionLogits;
            float maxLogit = maxLogits.Where(r => r is not null).SelectMany(r => r).DefaultIfEmpty(0).Max();
            int clipped = 0;
            if (c.Optimizer == "muonclip") clipped = QkClip.Apply(model.Parameters, modelConfig, maxLogits, c.QkClipTau).HeadsClipped;
            var loads = model.ExpertLoadsByLayer();
            float violation = 0;
            if (loads.Count > 0) violation = balancer.Update(model.Buffers, modelConfig, loads).MaxMaxViolation;
            double tokensPerSecond = (double)rows * seq / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
            var metrics = new StepMetrics(step, loss, c.LearningRate * factor, tokensPerSecond, maxLogit, clipped, violation);
            File.AppendAllText(MetricsPath, string.Create(CultureInfo.InvariantCulture,
                $"{step},{loss:R},{metrics.LearningRate:R},{tokensPerSecond:F1},{maxLogit:R},{clipped},{violation:R}\n"));
            if (step % c.LogEvery == 0 || step == c.Steps - 1) _progress?.Report(metrics);
            last = step;
            if ((step + 1) % c.CheckpointEvery == 0 || step == c.Steps - 1) SaveState(model, muon, adam, step);
            if (c.SnapshotEvery > 0 && (step + 1) % c.SnapshotEvery == 0 && step != c.Steps - 1) Export(model, tokenizerDir, SnapshotDirectory(step + 1));
        }
        if (last >= 0 && last == c.Steps - 1) Export(model, tokenizerDir, FinalDirectory);
        else if (last >= firstStep) SaveState(model, muon, adam, last);
        return last;
    }

    private void PrepareTokenizer(string directory, CancellationToken cancellationToken)
    {
        if (_config.TokenizerDirectory is { } existing)
        {
            Directory.CreateDirectory(directory);
            foreach (string name in new[] { "tiktoken.model", "tokenizer_config.json", "chat_template.jinja" })
                if (File.Exists(Path.Combine(existing, name))) File.Copy(Path.Combine(existing, name), Path.Combine(directory, name), overwrite: true);
            return;
        }
        var texts = TrainingTexts.ReadTextFiles(_config.TextFiles);
        // Conversations train the tokenizer as the model will see them: rendered through the chat template.
        var template = _config.ChatTemplateFile is { } file ? ChatTemplate.FromFile(file) : ChatTemplate.BuiltInKimiK2Thinking();
        var conversationTexts = TrainingData.Records(_config.ConversationFiles).Select(r =>
            r.Record["text"] is JsonValue text && text.TryGetValue(out string? rendered) ? rendered : TrainingData.Render(r.Record, template, r.File, r.Line));
        new BpeTrainer(_config.TokenizerRanks) { BareWords = _config.TokenizerBareWords }.WriteTokenizer(directory, texts.Concat(conversationTexts), null, null, cancellationToken);
    }

    /// <summary>
    /// Writes a Hugging Face folder (config.json, model.safetensors in float32 so the engine reproduces the trainer's
    /// logits exactly, tokenizer files) that <c>kimi logits</c>, <c>chat</c> and <c>serve</c> load as it is.
    /// </summary>
    public static void Export(TrainableModel model, string tokenizerDirectory, string directory)
    {
        model.SaveCheckpoint(directory, float32: true);
        foreach (string name in new[] { "tiktoken.model", "tokenizer_config.json", "chat_template.jinja" })
            if (File.Exists(Path.Combine(tokenizerDirectory, name)))
                File.Copy(Path.Combine(tokenizerDirectory, name), Path.Combine(directory, name), overwrite: true);
    }

    /// <summary>
    /// Saves weights (float32, exact), expert biases, optimizer moments and the step into a fresh folder that then
    /// replaces the previous state, so a kill at any moment leaves one complete state behind.
    /// </summary>
    private void SaveState(TrainableModel model, Muon? muon, AdamW adam, int step)
    {
        string temporary = StateDirectory + ".partial", previous = StateDirectory + ".previous";
        if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        Directory.CreateDirectory(temporary);
        var writer = new Model.Checkpoints.SafetensorsWriter();
        foreach (var p in model.Parameters.Concat(model.Buffers))
            writer.AddF32(p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Data);
        writer.Save(Path.Combine(temporary, "weights.safetensors"));
        using (var stream = File.Create(Path.Combine(temporary, "optimizer.bin")))
        {
            muon?.SaveState(stream);
            adam.SaveState(stream);
        }
        File.WriteAllText(Path.Combine(temporary, "step.txt"), step.ToString(CultureInfo.InvariantCulture));
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
        if (Directory.Exists(StateDirectory)) Directory.Move(StateDirectory, previous);
        Directory.Move(temporary, StateDirectory);
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
    }

    private int? LoadState(TrainableModel model, Muon? muon, AdamW adam)
    {
        string dir = Directory.Exists(StateDirectory) ? StateDirectory
            : Directory.Exists(StateDirectory + ".previous") ? StateDirectory + ".previous" : "";
        if (dir.Length == 0) return null;
        LoadWeights(model, dir);
        using (var stream = File.OpenRead(Path.Combine(dir, "optimizer.bin")))
        {
            muon?.LoadState(stream);
            adam.LoadState(stream);
        }
        return int.Parse(File.ReadAllText(Path.Combine(dir, "step.txt")), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Exports the run's latest saved state (also while it is still training) as a Hugging Face folder, like the
    /// final export; returns the step it holds.
    /// </summary>
    public static int ExportState(TrainConfig config, string directory)
    {
        string run = config.OutputDirectory, tokenizerDir = Path.Combine(run, "tokenizer");
        string state = Directory.Exists(Path.Combine(run, "state")) ? Path.Combine(run, "state") : Path.Combine(run, "state.previous");
        if (!File.Exists(Path.Combine(state, "step.txt"))) throw new FileNotFoundException($"no saved training state in {run}");
        var tokenizer = KimiTokenizer.FromModelDirectory(tokenizerDir);
        var model = new TrainableModel(config.Model with { VocabSize = tokenizer.VocabSize }, config.Seed);
        LoadWeights(model, state);
        Export(model, tokenizerDir, directory);
        return int.Parse(File.ReadAllText(Path.Combine(state, "step.txt")), CultureInfo.InvariantCulture);
    }

    /// <summary>Weights and expert biases from a state folder (this run's, or another run's for <c>init_from</c>).</summary>
    /// <summary>
    /// Initial weights for init_from: an earlier run's state (float32 <c>state/weights.safetensors</c>), or a Hugging
    /// Face model folder (one <c>model.safetensors</c> or shards with an index, as <c>kimi train</c> exports,
    /// <c>models/k2-nano/bf16</c> ships and K2 / K2.5 releases are laid out), whose F32/BF16/F16 tensors are read by
    /// name (under K2.5's <c>language_model.</c> when config.json says so) and widened to float32.
    /// </summary>
    private static unsafe void LoadInitialWeights(TrainableModel model, string init)
    {
        string state = Path.Combine(init, "state", "weights.safetensors");
        if (File.Exists(state)) { LoadStateWeights(model, state); return; }
        if (!File.Exists(Path.Combine(init, CheckpointTensors.SingleFileName)) && !File.Exists(Path.Combine(init, CheckpointTensors.IndexFileName)))
            throw new FileNotFoundException($"init_from '{init}' holds neither a training state (state/weights.safetensors) nor a model.safetensors (or its index): name an earlier run's output folder or a Hugging Face model folder");
        string prefix = File.Exists(Path.Combine(init, "config.json")) ? ModelConfig.Load(init).TensorPrefix : "";
        using var tensors = CheckpointTensors.Open(init);
        foreach (var p in model.Parameters.Concat(model.Buffers))
        {
            string name = prefix + p.Name;
            if (!tensors.Contains(name)) throw new CheckpointFormatException($"{init}: lacks '{name}' (was the model shape changed?)");
            var info = tensors.Info(name);
            Fill(p, info, new ReadOnlySpan<byte>(tensors.Pointer(name), checked((int)info.ByteLength)), Path.GetFileName(info.FilePath), isState: false);
        }
    }

    private static void LoadWeights(TrainableModel model, string dir) => LoadStateWeights(model, Path.Combine(dir, "weights.safetensors"));

    /// <summary>A training state's float32 weights and expert biases.</summary>
    private static void LoadStateWeights(TrainableModel model, string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"no training state at {Path.GetDirectoryName(path)}");
        using var file = SafetensorsFile.Open(path);
        foreach (var p in model.Parameters.Concat(model.Buffers))
        {
            var info = file.Tensors.TryGetValue(p.Name, out var i) ? i
                : throw new CheckpointFormatException($"{file.Path}: lacks '{p.Name}' (was the model shape changed?)");
            Fill(p, info, file.Bytes(info), file.Path, isState: true);
        }
    }

    private static void Fill(Parameter p, TensorInfo info, ReadOnlySpan<byte> bytes, string where, bool isState)
    {
        if (info.ElementCount != p.Count)
            throw new CheckpointFormatException($"{where}: tensor '{info.Name}' has {info.ElementCount} values, the configured model {p.Count}");
        switch (info.DType)
        {
            case SafetensorsDType.F32:
                bytes.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.Data.AsSpan()));
                break;
            case SafetensorsDType.BF16 when !isState:
                var bf16 = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int k = 0; k < p.Data.Length; k++) p.Data[k] = Kernels.NumberFormats.Bf16ToFloat(bf16[k]);
                break;
            case SafetensorsDType.F16 when !isState:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes), p.Data);
                break;
            default:
                throw new CheckpointFormatException($"{where}: tensor '{info.Name}' is {info.DType}; init_from reads F32{(isState ? "" : ", BF16 or F16")}");
        }
    }

    private void TruncateMetrics(int firstStep)
    {
        // A process killed mid-write can leave a torn last line; only whole lines of steps before the resume point stay.
        var lines = File.ReadAllLines(MetricsPath);
        var kept = lines.Take(1).Concat(lines.Skip(1).Where(l =>
            l.Split(',') is { Length: 7 } f && int.TryParse(f[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int s) && s < firstStep));
        File.WriteAllText(MetricsPath, string.Join('\n', kept) + "\n");
    }
}
