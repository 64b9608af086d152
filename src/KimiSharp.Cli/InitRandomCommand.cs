using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli;

/// <summary>
/// <c>kimi init-random</c>: writes a random-weight checkpoint of any K2-family shape (read from a config.json-style
/// file) in the real storage formats, so benchmarks and tests need no downloads. Large tensors are generated while the
/// file is written, so memory stays at a few tensors whatever the checkpoint size. A file with a vision_config or a
/// text_config gives a Kimi K2.5 checkpoint in the released layout (language model under <c>language_model.</c> and
/// text_config, vision tower beside it); <c>--layout</c> chooses explicitly.
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
        var layout = CliOptions.Choice("--layout",
            "k2: Kimi K2 / DeepSeek-V3 (DeepseekV3ForCausalLM); k25: Kimi K2.5 as released (KimiK25ForConditionalGeneration, with a vision tower); " +
            "auto: k25 when FILE has a vision_config or text_config, else k2",
            "auto", "auto", "k2", "k25");
        var command = new Command("init-random", "Write a random-weight checkpoint of the config.json-style shape in FILE, in the real storage formats.")
        {
            config, output, quant, seed, shardMb, tokenizer, layout,
        };
        command.SetAction(r => Run(r.GetValue(config)!, r.GetValue(output)!, r.GetValue(quant)!, r.GetValue(seed), r.GetValue(shardMb),
            r.GetValue(tokenizer) is not null, r.Out(), r.Err(), r.GetValue(layout)!));
        return command;
    }

    public static int Run(string configPath, string outDir, string quant, int? seed, int? shardMb, bool byteTokenizer, TextWriter stdout, TextWriter stderr,
        string layout = "auto")
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
        string configJson = File.ReadAllText(configPath);
        bool hasVision = HasObject(configJson, "vision_config");
        bool k25 = layout switch
        {
            "k25" => true,
            "k2" => false,
            _ => hasVision || HasObject(configJson, "text_config"),
        };
        var clock = Stopwatch.StartNew();
        IReadOnlyList<string> files;
        if (k25)
        {
            // K2.5 ships its tower in BF16 whatever the text format; a file without vision_config gets the tiny test tower.
            var vision = (hasVision ? KimiSharp.Vision.VisionConfig.Parse(configJson, configPath) : KimiSharp.Vision.RandomVisionCheckpoint.Tiny() with { MediaPlaceholderTokenId = null })
                with { TextHiddenSize = parsed.HiddenSize };
            vision = vision with { MediaPlaceholderTokenId = PlaceholderId(vision.MediaPlaceholderTokenId, parsed.VocabSize, byteTokenizer, stderr) };
            files = Terminal.Spin(stderr, $"writing {outDir}", () =>
                KimiSharp.Vision.RandomVisionCheckpoint.WriteK25(outDir, parsed, vision, KimiSharp.Model.Safetensors.SafetensorsDType.BF16));
        }
        else
        {
            files = Terminal.Spin(stderr, $"writing {outDir}", () => RandomCheckpoint.Write(outDir, parsed));
            // --layout k2 with a vision_config: the tower joins a K2-layout text checkpoint (a hybrid KimiSharp loads, not a released layout).
            if (hasVision)
            {
                var vision = KimiSharp.Vision.VisionConfig.Parse(configJson, configPath) with { TextHiddenSize = parsed.HiddenSize };
                vision = vision with { MediaPlaceholderTokenId = PlaceholderId(vision.MediaPlaceholderTokenId, parsed.VocabSize, byteTokenizer, stderr) };
                var visionFiles = KimiSharp.Vision.RandomVisionCheckpoint.AddToCheckpoint(outDir, vision,
                    KimiSharp.Model.Safetensors.SafetensorsDType.BF16, parsed.Seed + 1);
                files = [.. files.Union(visionFiles)];
            }
        }
        long bytes = files.Sum(f => new FileInfo(Path.Combine(outDir, f)).Length);
        if (byteTokenizer) files = [.. files, "tiktoken.model", "tokenizer_config.json"];
        stdout.WriteLine($"wrote {outDir}: {files.Count} files, {bytes / 1e6:F1} MB ({quant}{(k25 ? ", Kimi K2.5 layout" : "")}) in {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    private static bool HasObject(string json, string key)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.ValueKind == JsonValueKind.Object
            && document.RootElement.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.Object;
    }

    /// <summary>
    /// The media placeholder id to write: with the byte tokenizer, where its &lt;|media_pad|&gt; landed (K2's id would be
    /// outside its vocabulary); otherwise FILE's id (with a warning when the vocabulary lacks it), or K2.5's 163605 when
    /// FILE gives none and the vocabulary has it.
    /// </summary>
    private static int? PlaceholderId(int? fromFile, int vocabSize, bool byteTokenizer, TextWriter stderr)
    {
        if (byteTokenizer)
            return KimiSharp.Tokens.Tokenization.KimiSpecialTokens.MediaPadId - KimiSharp.Tokens.Tokenization.KimiSpecialTokens.NumBaseTokens
                + KimiSharp.Tokens.TokenizerFiles.ByteRanks().Count;
        if (fromFile is int id)
        {
            if (id >= vocabSize)
                stderr.WriteLine($"warning: media_placeholder_token_id {id} is outside the vocabulary (vocab_size {vocabSize}); images cannot be placed (--tokenizer bytes gives one that fits)");
            return id;
        }
        return KimiSharp.Tokens.Tokenization.KimiSpecialTokens.MediaPadId < vocabSize ? KimiSharp.Tokens.Tokenization.KimiSpecialTokens.MediaPadId : null;
    }

    /// <summary>Reads the shape and routing keys of a Hugging Face DeepSeek-V3 / K2 config.json; missing keys keep the defaults.</summary>
    public static RandomCheckpointOptions ParseConfig(string json, string source)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new UsageException($"{source}: not valid JSON ({e.Message})"); }
        using (document)
        {
            var top = document.RootElement;
            if (top.ValueKind != JsonValueKind.Object) throw new UsageException($"{source}: expected a JSON object");
            // A K2.5 config keeps the language model's keys (quantization_config included) in text_config; token ids
            // and tie_word_embeddings may sit at either level.
            bool nested = top.TryGetProperty("text_config", out var text) && text.ValueKind == JsonValueKind.Object;
            var root = nested ? text : top;
            var o = new RandomCheckpointOptions();
            string where = nested ? "text_config." : "";
            int Int(string key, int fallback) =>
                root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number
                    ? (v.TryGetInt32(out int i) ? i : throw new UsageException($"{source}: {where}{key} must be an integer"))
                    : fallback;
            int OuterInt(string key, int fallback) =>
                top.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : fallback;
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
            if ((root.TryGetProperty("quantization_config", out var qc) || top.TryGetProperty("quantization_config", out qc)) && qc.ValueKind == JsonValueKind.Object
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
                TieWordEmbeddings = Bool("tie_word_embeddings", top.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True),
                BosTokenId = Int("bos_token_id", OuterInt("bos_token_id", o.BosTokenId)),
                EosTokenId = Int("eos_token_id", OuterInt("eos_token_id", o.EosTokenId)),
                Int4GroupSize = groupSize ?? o.Int4GroupSize,
            };
            try { options.Validate(); }
            catch (ArgumentException e) { throw new UsageException($"{source}: {e.Message}"); }
            return options;
        }
    }
}
