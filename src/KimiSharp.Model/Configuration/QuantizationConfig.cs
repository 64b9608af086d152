using System.Text.Json;
using System.Text.RegularExpressions;

namespace KimiSharp.Model.Configuration;

/// <summary>How a checkpoint's linear weights are quantized (config.json <c>quantization_config</c>).</summary>
public abstract record QuantizationConfig
{
    /// <param name="prefix">Where the object sits ("text_config." for K2.5), so errors name the key in full.</param>
    public static QuantizationConfig Parse(JsonElement element, string prefix = "")
    {
        if (element.ValueKind != JsonValueKind.Object) throw new ModelConfigException($"config.json: {prefix}quantization_config must be an object");
        string method = element.TryGetProperty("quant_method", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "";
        return method switch
        {
            "fp8" => Fp8BlockQuantization.Parse(element, prefix),
            "compressed-tensors" => PackQuantization.Parse(element, prefix),
            _ => throw new ModelConfigException($"config.json: {prefix}quantization_config.quant_method '{method}' is not supported (fp8, compressed-tensors)"),
        };
    }
}

/// <summary>DeepSeek-V3 / Kimi K2 Instruct: F8_E4M3 weights with a float32 <c>weight_scale_inv</c> per block.</summary>
public sealed record Fp8BlockQuantization(int BlockRows, int BlockCols) : QuantizationConfig
{
    public static new Fp8BlockQuantization Parse(JsonElement element, string prefix = "")
    {
        if (element.TryGetProperty("fmt", out var fmt) && fmt.ValueKind == JsonValueKind.String && fmt.GetString() != "e4m3")
            throw new ModelConfigException($"config.json: {prefix}quantization_config.fmt '{fmt.GetString()}' is not supported (e4m3)");
        if (element.TryGetProperty("scale_fmt", out var scaleFmt) && scaleFmt.ValueKind == JsonValueKind.String && scaleFmt.GetString() is not ("float32" or "fp32"))
            throw new ModelConfigException($"config.json: {prefix}quantization_config.scale_fmt '{scaleFmt.GetString()}' is not supported");
        if (!element.TryGetProperty("weight_block_size", out var block) || block.ValueKind == JsonValueKind.Null)
            return new Fp8BlockQuantization(128, 128);
        if (block.ValueKind != JsonValueKind.Array || block.GetArrayLength() != 2
            || !block[0].TryGetInt32(out int rows) || !block[1].TryGetInt32(out int cols) || rows <= 0 || cols <= 0)
            throw new ModelConfigException($"config.json: {prefix}quantization_config.weight_block_size must be two positive integers, got {block.GetRawText()}");
        return new Fp8BlockQuantization(rows, cols);
    }
}

/// <summary>One compressed-tensors config group: which modules it covers and how their weights are packed.</summary>
public sealed record PackGroup(string Name, IReadOnlyList<string> Targets, int Bits, int GroupSize);

/// <summary>
/// compressed-tensors <c>pack-quantized</c> (Kimi K2 Thinking): symmetric integer weights packed into int32
/// words with one scale per group of input columns. Modules named by <see cref="Ignore"/> stay unquantized.
/// </summary>
public sealed record PackQuantization(IReadOnlyList<PackGroup> Groups, IReadOnlyList<string> Ignore) : QuantizationConfig
{
    public static new PackQuantization Parse(JsonElement element, string prefix = "")
    {
        string format = element.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString()! : "";
        if (format != "pack-quantized")
            throw new ModelConfigException($"config.json: {prefix}quantization_config.format '{format}' is not supported (pack-quantized)");
        if (!element.TryGetProperty("config_groups", out var groups) || groups.ValueKind != JsonValueKind.Object)
            throw new ModelConfigException($"config.json: {prefix}quantization_config.config_groups is missing");
        var parsed = new List<PackGroup>();
        foreach (var group in groups.EnumerateObject())
        {
            string where = $"{prefix}quantization_config.config_groups.{group.Name}";
            var g = group.Value;
            var targets = g.TryGetProperty("targets", out var t) && t.ValueKind == JsonValueKind.Array
                ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToArray()
                : throw new ModelConfigException($"config.json: {where}.targets is missing");
            if (!g.TryGetProperty("weights", out var w) || w.ValueKind != JsonValueKind.Object)
                throw new ModelConfigException($"config.json: {where}.weights is missing");
            if (g.TryGetProperty("input_activations", out var act) && act.ValueKind != JsonValueKind.Null)
                throw new ModelConfigException($"config.json: {where}.input_activations is set, but only weight-only quantization is supported");
            int bits = w.TryGetProperty("num_bits", out var b) && b.TryGetInt32(out int nb) ? nb : 0;
            if (bits is not (4 or 8)) throw new ModelConfigException($"config.json: {where}.weights.num_bits {bits} is not supported (4 or 8)");
            string type = w.TryGetProperty("type", out var ty) && ty.ValueKind == JsonValueKind.String ? ty.GetString()! : "int";
            if (type != "int") throw new ModelConfigException($"config.json: {where}.weights.type '{type}' is not supported (int)");
            if (w.TryGetProperty("symmetric", out var sym) && sym.ValueKind == JsonValueKind.False)
                throw new ModelConfigException($"config.json: {where}.weights.symmetric false is not supported (asymmetric weights need zero points)");
            string strategy = w.TryGetProperty("strategy", out var st) && st.ValueKind == JsonValueKind.String ? st.GetString()! : "group";
            int groupSize;
            if (strategy == "group")
            {
                groupSize = w.TryGetProperty("group_size", out var gs) && gs.TryGetInt32(out int size) ? size : 0;
                if (groupSize <= 0) throw new ModelConfigException($"config.json: {where}.weights.group_size must be a positive integer");
            }
            else if (strategy == "channel") groupSize = int.MaxValue; // one scale per output row
            else throw new ModelConfigException($"config.json: {where}.weights.strategy '{strategy}' is not supported (group, channel)");
            if (w.TryGetProperty("actorder", out var ao) && ao.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
                throw new ModelConfigException($"config.json: {where}.weights.actorder {ao.GetRawText()} is not supported");
            parsed.Add(new PackGroup(group.Name, targets, bits, groupSize));
        }
        if (parsed.Count == 0) throw new ModelConfigException($"config.json: {prefix}quantization_config.config_groups is empty");
        var ignore = element.TryGetProperty("ignore", out var ig) && ig.ValueKind == JsonValueKind.Array
            ? ig.EnumerateArray().Select(x => x.GetString() ?? "").ToArray()
            : [];
        foreach (string pattern in ignore.Concat(parsed.SelectMany(p => p.Targets)).Where(p => p.StartsWith("re:", StringComparison.Ordinal)))
        {
            try { _ = new Regex(pattern[3..]); }
            catch (ArgumentException e) { throw new ModelConfigException($"config.json: {prefix}quantization_config pattern '{pattern}' is not a valid regular expression ({e.Message})", e); }
        }
        return new PackQuantization(parsed, ignore);
    }

    /// <summary>The group that quantizes Linear module <paramref name="module"/>, or null when it is stored unquantized.</summary>
    public PackGroup? GroupFor(string module) => GroupFor(module, module);

    /// <summary>
    /// <see cref="GroupFor(string)"/> for a module stored as <paramref name="storedName"/> (K2.5's
    /// <c>language_model.lm_head</c>) that the engine knows by its K2 name <paramref name="module"/> (<c>lm_head</c>). A
    /// pattern may name either: the released K2.5 ignore list says plain "lm_head", as vLLM names the module.
    /// </summary>
    public PackGroup? GroupFor(string module, string storedName)
    {
        if (Ignore.Any(p => Matches(p, module) || Matches(p, storedName))) return null;
        return Groups.FirstOrDefault(g => g.Targets.Any(t => t == "Linear" || Matches(t, module) || Matches(t, storedName)));
    }

    /// <summary>compressed-tensors names match exactly, or by a "re:" pattern anchored at the start (Python re.match).</summary>
    private static bool Matches(string pattern, string module) =>
        pattern.StartsWith("re:", StringComparison.Ordinal)
            ? Regex.IsMatch(module, @"\A(?:" + pattern[3..] + ")", RegexOptions.CultureInvariant)
            : pattern == module;
}
