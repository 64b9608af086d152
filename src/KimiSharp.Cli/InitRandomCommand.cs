using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi init-random</c>: writes a random-weight checkpoint of any K2-family shape (read from a config.json-style
/// file) in the real storage formats, so benchmarks and tests need no downloads. Large tensors are generated while the
/// file is written, so memory stays at a few tensors whatever the checkpoint size.
/// </summary>
public static class InitRandomCommand
{
    public static Command Create()
    {
        var config = CliOptions.Required("--config", "FILE", "A config.json-style file giving the shape (missing keys keep the defaults)");
        var output = CliOptions.Required("--out", "DIR", "The model folder to write");
        var quant = CliOptions.Choice("--quant", "Storage: int4 (routed experts INT4, the rest BF16), int4-all (every linear INT4), fp8 (block FP8) or bf16",
            "int4", "int4", "int4-all", "fp8", "bf16");
        var seed = CliOptions.OptionalInt("--seed", "Seed of the random weights");
        var shardMb = CliOptions.OptionalInt("--shard-mb", "Shard the safetensors at this many MB of tensor data", min: 1, helpName: "MB");
        var tokenizer = CliOptions.Parsed("--tokenizer", "bytes", "bytes: also write a byte-level Kimi tokenizer so chat and serve work on the model",
            text => text == "bytes" ? text : throw new UsageException($"--tokenizer must be 'bytes', got '{text}'"));
        tokenizer.CompletionSources.Add("bytes");
        var command = new Command("init-random", "Write a random-weight checkpoint of the config.json-style shape in FILE, in the real storage formats.")
        {
            config, output, quant, seed, shardMb, tokenizer,
        };
        command.SetAction(r => Run(r.GetValue(config)!, r.GetValue(output)!, r.GetValue(quant)!, r.GetValue(seed), r.GetValue(shardMb),
            r.GetValue(tokenizer) is not null, r.Out(), r.Err()));
        return command;
    }

    public static int Run(string configPath, string outDir, string quant, int? seed, int? shardMb, bool byteTokenizer, TextWriter stdout, TextWriter stderr)
    {
        var format = quant switch
        {
            "fp8" => CheckpointFormat.Fp8,
            "bf16" => CheckpointFormat.Bf16,
            _ => CheckpointFormat.Int4,
        };
        var parsed = ParseConfig(File.ReadAllText(configPath), configPath) with { Format = format, Int4AllLinears = quant == "int4-all" };
        if (seed is int s) parsed = parsed with { Seed = s };
        if (shardMb is int mb) parsed = parsed with { MaxShardBytes = mb * 1_000_000L };

        // --tokenizer bytes: also write a byte-level Kimi tokenizer (256 byte ranks + Kimi's special tokens) sized to
        // the model, so chat, serve and the APIs run end to end on the random model.
        if (byteTokenizer)
            parsed = parsed with { VocabSize = KimiSharp.Tokens.TokenizerFiles.Write(outDir, KimiSharp.Tokens.TokenizerFiles.ByteRanks()) };
        var clock = Stopwatch.StartNew();
        var files = Terminal.Spin(stderr, $"writing {outDir}", () => RandomCheckpoint.Write(outDir, parsed));
        // A vision_config in FILE makes it a K2.5 checkpoint: a random MoonViT tower (BF16, as K2.5 ships it) joins the text weights.
        string configJson = File.ReadAllText(configPath);
        if (configJson.Contains("\"vision_config\"", StringComparison.Ordinal))
        {
            var vision = KimiSharp.Vision.VisionConfig.Parse(configJson, configPath) with { TextHiddenSize = parsed.HiddenSize };
            var visionFiles = KimiSharp.Vision.RandomVisionCheckpoint.AddToCheckpoint(outDir, vision,
                KimiSharp.Model.Safetensors.SafetensorsDType.BF16, parsed.Seed + 1);
            files = [.. files.Union(visionFiles)];
        }
        long bytes = files.Sum(f => new FileInfo(Path.Combine(outDir, f)).Length);
        if (byteTokenizer) files = [.. files, "tiktoken.model", "tokenizer_config.json"];
        stdout.WriteLine($"wrote {outDir}: {files.Count} files, {bytes / 1e6:F1} MB ({quant}) in {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>Reads the shape and routing keys of a Hugging Face DeepSeek-V3 / K2 config.json; missing keys keep the defaults.</summary>
    public static RandomCheckpointOptions ParseConfig(string json, string source)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new UsageException($"{source}: not valid JSON ({e.Message})"); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new UsageException($"{source}: expected a JSON object");
            var o = new RandomCheckpointOptions();
            int Int(string key, int fallback) =>
                root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number
                    ? (v.TryGetInt32(out int i) ? i : throw new UsageException($"{source}: {key} must be an integer"))
                    : fallback;
            double Double(string key, double fallback) =>
                root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
            bool Bool(string key, bool fallback) =>
                root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;
            int? qLora = root.TryGetProperty("q_lora_rank", out var q) && q.ValueKind == JsonValueKind.Number ? q.GetInt32() : null;
            YarnOptions? yarn = null;
            if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
            {
                double D(string key, double fallback) => rs.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
                var y = new YarnOptions();
                yarn = y with
                {
                    Factor = D("factor", y.Factor),
                    OriginalMaxPositionEmbeddings = (int)D("original_max_position_embeddings", y.OriginalMaxPositionEmbeddings),
                    BetaFast = D("beta_fast", y.BetaFast),
                    BetaSlow = D("beta_slow", y.BetaSlow),
                    Mscale = D("mscale", y.Mscale),
                    MscaleAllDim = D("mscale_all_dim", y.MscaleAllDim),
                };
            }
            int? groupSize = null;
            if (root.TryGetProperty("quantization_config", out var qc) && qc.ValueKind == JsonValueKind.Object
                && qc.TryGetProperty("config_groups", out var groups) && groups.ValueKind == JsonValueKind.Object)
                foreach (var g in groups.EnumerateObject())
                    if (g.Value.TryGetProperty("weights", out var w) && w.TryGetProperty("group_size", out var gs) && gs.TryGetInt32(out int size))
                        groupSize ??= size;
            var options = o with
            {
                VocabSize = Int("vocab_size", o.VocabSize),
                HiddenSize = Int("hidden_size", o.HiddenSize),
                IntermediateSize = Int("intermediate_size", o.IntermediateSize),
                MoeIntermediateSize = Int("moe_intermediate_size", o.MoeIntermediateSize),
                NumHiddenLayers = Int("num_hidden_layers", o.NumHiddenLayers),
                NumAttentionHeads = Int("num_attention_heads", o.NumAttentionHeads),
                NRoutedExperts = Int("n_routed_experts", o.NRoutedExperts),
                NSharedExperts = Int("n_shared_experts", o.NSharedExperts),
                NumExpertsPerTok = Int("num_experts_per_tok", o.NumExpertsPerTok),
                NGroup = Int("n_group", o.NGroup),
                TopkGroup = Int("topk_group", o.TopkGroup),
                RoutedScalingFactor = Double("routed_scaling_factor", o.RoutedScalingFactor),
                NormTopkProb = Bool("norm_topk_prob", o.NormTopkProb),
                FirstKDenseReplace = Int("first_k_dense_replace", o.FirstKDenseReplace),
                MoeLayerFreq = Int("moe_layer_freq", o.MoeLayerFreq),
                QLoraRank = qLora,
                KvLoraRank = Int("kv_lora_rank", o.KvLoraRank),
                QkNopeHeadDim = Int("qk_nope_head_dim", o.QkNopeHeadDim),
                QkRopeHeadDim = Int("qk_rope_head_dim", o.QkRopeHeadDim),
                VHeadDim = Int("v_head_dim", o.VHeadDim),
                RopeTheta = Double("rope_theta", o.RopeTheta),
                Yarn = yarn,
                RmsNormEps = Double("rms_norm_eps", o.RmsNormEps),
                MaxPositionEmbeddings = Int("max_position_embeddings", o.MaxPositionEmbeddings),
                TieWordEmbeddings = Bool("tie_word_embeddings", o.TieWordEmbeddings),
                BosTokenId = Int("bos_token_id", o.BosTokenId),
                EosTokenId = Int("eos_token_id", o.EosTokenId),
                Int4GroupSize = groupSize ?? o.Int4GroupSize,
            };
            try { options.Validate(); }
            catch (ArgumentException e) { throw new UsageException($"{source}: {e.Message}"); }
            return options;
        }
    }
}
