using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace KimiSharp.Vision.Tests;

/// <summary>
/// An independent float64 reference of the K2.5 vision path, written from the published PyTorch code
/// (MoonViT3dPretrainedModel + PatchMergerMLP) with plain loops. It reads the safetensors file itself and shares no
/// code with the engine: the bicubic resize evaluates Keys' kernel at each tap's distance, RoPE is a complex product,
/// and erf comes from Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7).
/// </summary>
internal sealed class VisionReference
{
    private readonly Dictionary<string, double[]> _t;
    private readonly int _d, _heads, _layers, _patch, _tableH, _tableW, _text, _inter;
    private readonly double _projEps;

    public VisionReference(string directory)
    {
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(directory, "config.json")));
        var v = config.RootElement.GetProperty("vision_config");
        _d = v.GetProperty("vt_hidden_size").GetInt32();
        _heads = v.GetProperty("vt_num_attention_heads").GetInt32();
        _layers = v.GetProperty("vt_num_hidden_layers").GetInt32();
        _inter = v.GetProperty("vt_intermediate_size").GetInt32();
        _patch = v.GetProperty("patch_size").GetInt32();
        _tableH = v.GetProperty("init_pos_emb_height").GetInt32();
        _tableW = v.GetProperty("init_pos_emb_width").GetInt32();
        _text = v.GetProperty("text_hidden_size").GetInt32();
        _projEps = v.GetProperty("projector_ln_eps").GetDouble();
        _t = ReadSafetensors(Path.Combine(directory, "model.safetensors"));
    }

    public int TextHidden => _text;

    /// <summary>Features [tokens, text] of one image (frames = 1) or video chunk; pixels [t·h·w, 3·p·p] as the engine takes them.</summary>
    public double[,] Forward(float[] pixels, int frames, int rows, int cols)
    {
        int n = frames * rows * cols, d = _d, pe = 3 * _patch * _patch;
        var x = new double[n, d];
        var w = _t["vision_tower.patch_embed.proj.weight"];
        var b = _t["vision_tower.patch_embed.proj.bias"];
        for (int i = 0; i < n; i++)
            for (int o = 0; o < d; o++)
            {
                double s = b[o];
                for (int e = 0; e < pe; e++) s += w[o * pe + e] * pixels[i * pe + e];
                x[i, o] = s;
            }

        // Position table: as stored when the grid equals it, else torch bicubic (a = -0.75, align_corners=False).
        var table = _t["vision_tower.patch_embed.pos_emb.weight"];
        for (int f = 0; f < frames; f++)
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                {
                    int i = (f * rows + r) * cols + c;
                    for (int o = 0; o < d; o++)
                    {
                        double p = rows == _tableH && cols == _tableW
                            ? table[(r * _tableW + c) * d + o]
                            : Bicubic(table, r, c, o, rows, cols);
                        if (frames > 1)
                        {
                            int half = d / 2, k = o % half;
                            double omega = Math.Pow(10000, -(double)k / half);
                            p += o < half ? Math.Sin(f * omega) : Math.Cos(f * omega);
                        }
                        x[i, o] += p;
                    }
                }

        int hd = d / _heads;
        for (int layer = 0; layer < _layers; layer++)
        {
            string pre = $"vision_tower.encoder.blocks.{layer}.";
            var h = LayerNorm(x, _t[pre + "norm0.weight"], _t[pre + "norm0.bias"], 1e-5);
            var qkv = Linear(h, _t[pre + "wqkv.weight"], _t[pre + "wqkv.bias"]);
            var attn = new double[n, d];
            for (int head = 0; head < _heads; head++)
            {
                var q = new double[n, hd];
                var k = new double[n, hd];
                for (int i = 0; i < n; i++)
                {
                    int r = i / cols % rows, c = i % cols;
                    for (int j = 0; j < hd / 2; j++)
                    {
                        // Complex pair j of the head turns by column (j even) or row (j odd) times 10000^(-4⌊j/2⌋/hd).
                        double angle = (j % 2 == 0 ? c : r) * Math.Pow(10000, -4.0 * (j / 2) / hd);
                        double cr = Math.Cos(angle), ci = Math.Sin(angle);
                        double qa = qkv[i, head * hd + 2 * j], qb = qkv[i, head * hd + 2 * j + 1];
                        double ka = qkv[i, d + head * hd + 2 * j], kb = qkv[i, d + head * hd + 2 * j + 1];
                        q[i, 2 * j] = qa * cr - qb * ci; q[i, 2 * j + 1] = qa * ci + qb * cr;
                        k[i, 2 * j] = ka * cr - kb * ci; k[i, 2 * j + 1] = ka * ci + kb * cr;
                    }
                }
                var scores = new double[n];
                for (int i = 0; i < n; i++)
                {
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < n; j++)
                    {
                        double s = 0;
                        for (int e = 0; e < hd; e++) s += q[i, e] * k[j, e];
                        scores[j] = s / Math.Sqrt(hd);
                        max = Math.Max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < n; j++) { scores[j] = Math.Exp(scores[j] - max); sum += scores[j]; }
                    for (int e = 0; e < hd; e++)
                    {
                        double s = 0;
                        for (int j = 0; j < n; j++) s += scores[j] * qkv[j, 2 * d + head * hd + e];
                        attn[i, head * hd + e] = s / sum;
                    }
                }
            }
            var o1 = Linear(attn, _t[pre + "wo.weight"], _t[pre + "wo.bias"]);
            Add(x, o1);
            var h2 = LayerNorm(x, _t[pre + "norm1.weight"], _t[pre + "norm1.bias"], 1e-5);
            var m = Linear(h2, _t[pre + "mlp.fc0.weight"], _t[pre + "mlp.fc0.bias"]);
            for (int i = 0; i < n; i++)
                for (int e = 0; e < _inter; e++)
                {
                    double z = m[i, e];
                    m[i, e] = 0.5 * z * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (z + 0.044715 * z * z * z)));
                }
            Add(x, Linear(m, _t[pre + "mlp.fc1.weight"], _t[pre + "mlp.fc1.bias"]));
        }
        x = LayerNorm(x, _t["vision_tower.encoder.final_layernorm.weight"], _t["vision_tower.encoder.final_layernorm.bias"], 1e-5);

        // tpool_patch_merger: view (t, h/2, 2, w/2, 2, d), mean over t, permute to (h/2, w/2, 2, 2, d); then the projector.
        int outRows = rows / 2, outCols = cols / 2, tokens = outRows * outCols;
        var merged = new double[tokens, 4 * d];
        for (int i = 0; i < outRows; i++)
            for (int j = 0; j < outCols; j++)
                for (int a = 0; a < 2; a++)
                    for (int bb = 0; bb < 2; bb++)
                    {
                        var sub = new double[d];
                        for (int f = 0; f < frames; f++)
                            for (int o = 0; o < d; o++)
                                sub[o] += x[(f * rows + 2 * i + a) * cols + 2 * j + bb, o] / frames;
                        // pre_norm is a LayerNorm over each sub-patch's d values.
                        double mean = sub.Average(), variance = sub.Select(s => (s - mean) * (s - mean)).Average();
                        for (int o = 0; o < d; o++)
                            merged[i * outCols + j, (a * 2 + bb) * d + o] = (sub[o] - mean) / Math.Sqrt(variance + _projEps)
                                * _t["mm_projector.pre_norm.weight"][o] + _t["mm_projector.pre_norm.bias"][o];
                    }
        var p1 = Linear(merged, _t["mm_projector.proj.0.weight"], _t["mm_projector.proj.0.bias"]);
        for (int i = 0; i < tokens; i++)
            for (int e = 0; e < 4 * d; e++) p1[i, e] = 0.5 * p1[i, e] * (1 + Erf(p1[i, e] / Math.Sqrt(2)));
        return Linear(p1, _t["mm_projector.proj.2.weight"], _t["mm_projector.proj.2.bias"]);
    }

    private double Bicubic(double[] table, int r, int c, int o, int rows, int cols)
    {
        double sy = (r + 0.5) * _tableH / rows - 0.5, sx = (c + 0.5) * _tableW / cols - 0.5;
        int y0 = (int)Math.Floor(sy), x0 = (int)Math.Floor(sx);
        double sum = 0;
        for (int dy = -1; dy <= 2; dy++)
            for (int dx = -1; dx <= 2; dx++)
            {
                int yy = Math.Min(Math.Max(y0 + dy, 0), _tableH - 1), xx = Math.Min(Math.Max(x0 + dx, 0), _tableW - 1);
                sum += Keys(y0 + dy - sy) * Keys(x0 + dx - sx) * table[(yy * _tableW + xx) * _d + o];
            }
        return sum;
    }

    private static double Keys(double s)
    {
        const double a = -0.75;
        s = Math.Abs(s);
        if (s <= 1) return (a + 2) * s * s * s - (a + 3) * s * s + 1;
        if (s < 2) return a * s * s * s - 5 * a * s * s + 8 * a * s - 4 * a;
        return 0;
    }

    private static double Erf(double x)
    {
        double t = 1 / (1 + 0.3275911 * Math.Abs(x));
        double y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return x < 0 ? -y : y;
    }

    private static double[,] Linear(double[,] x, double[] w, double[] b)
    {
        int n = x.GetLength(0), cols = x.GetLength(1), rows = b.Length;
        var y = new double[n, rows];
        for (int i = 0; i < n; i++)
            for (int r = 0; r < rows; r++)
            {
                double s = b[r];
                for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[i, c];
                y[i, r] = s;
            }
        return y;
    }

    private static double[,] LayerNorm(double[,] x, double[] w, double[] b, double eps)
    {
        int n = x.GetLength(0), d = x.GetLength(1);
        var y = new double[n, d];
        for (int i = 0; i < n; i++)
        {
            double mean = 0, variance = 0;
            for (int o = 0; o < d; o++) mean += x[i, o];
            mean /= d;
            for (int o = 0; o < d; o++) variance += (x[i, o] - mean) * (x[i, o] - mean);
            variance /= d;
            for (int o = 0; o < d; o++) y[i, o] = (x[i, o] - mean) / Math.Sqrt(variance + eps) * w[o] + b[o];
        }
        return y;
    }

    private static void Add(double[,] x, double[,] y)
    {
        for (int i = 0; i < x.GetLength(0); i++)
            for (int o = 0; o < x.GetLength(1); o++) x[i, o] += y[i, o];
    }

    private static Dictionary<string, double[]> ReadSafetensors(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength));
        long data = 8 + headerLength;
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__") continue;
            string dtype = entry.Value.GetProperty("dtype").GetString()!;
            long start = entry.Value.GetProperty("data_offsets")[0].GetInt64() + data, end = entry.Value.GetProperty("data_offsets")[1].GetInt64() + data;
            int size = dtype == "F32" ? 4 : 2;
            var values = new double[(end - start) / size];
            for (int i = 0; i < values.Length; i++)
            {
                var span = bytes.AsSpan((int)(start + (long)i * size), size);
                values[i] = dtype switch
                {
                    "F32" => BinaryPrimitives.ReadSingleLittleEndian(span),
                    "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(span) << 16),
                    _ => throw new InvalidDataException($"reference reader: unexpected dtype {dtype} for {entry.Name}"),
                };
            }
            result[entry.Name] = values;
        }
        return result;
    }
}
