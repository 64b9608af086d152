using System.Buffers.Binary;
using System.Text;
using KimiSharp.Cli;
using KimiSharp.Kernels;
using KimiSharp.Model;
using KimiSharp.Model.Checkpoints;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi export-gguf</c> writes a GGUF v3 file in the deepseek2 layout that parses back to the source weights.</summary>
public sealed class ExportGgufCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-gguf-test-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => Kimi.Run(args);

    // hidden 96 and kv_lora 64 are multiples of 32 (Q4_0); qk_nope 16 is not, so attn_k_b stays F32.
    private static readonly string SmallConfig = Kimi.SmallConfig(64);

    private sealed record TensorInfo(string Name, long[] Shape, uint Type, ulong Offset);

    /// <summary>Just enough of a GGUF reader: header, metadata (scalars and arrays), tensor infos, data start.</summary>
    private sealed class GgufFile
    {
        public uint Version;
        public Dictionary<string, object> Metadata = [];
        public Dictionary<string, TensorInfo> Tensors = [];
        public long DataStart;
        public byte[] Bytes = [];

        public static GgufFile Read(string path)
        {
            var bytes = File.ReadAllBytes(path);
            var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
            Assert.Equal("GGUF", Encoding.ASCII.GetString(r.ReadBytes(4)));
            var f = new GgufFile { Version = r.ReadUInt32(), Bytes = bytes };
            ulong tensors = r.ReadUInt64(), kvs = r.ReadUInt64();
            string Str() => Encoding.UTF8.GetString(r.ReadBytes(checked((int)r.ReadUInt64())));
            object Value(uint type) => type switch
            {
                0 => r.ReadByte(), 1 => r.ReadSByte(), 2 => r.ReadUInt16(), 3 => r.ReadInt16(), 4 => r.ReadUInt32(),
                5 => r.ReadInt32(), 6 => r.ReadSingle(), 7 => r.ReadByte() != 0, 8 => Str(),
                9 => ReadArray(), 10 => r.ReadUInt64(), 11 => r.ReadInt64(), 12 => r.ReadDouble(),
                _ => throw new InvalidDataException($"GGUF value type {type}"),
            };
            object[] ReadArray()
            {
                uint type = r.ReadUInt32();
                var items = new object[checked((int)r.ReadUInt64())];
                for (int i = 0; i < items.Length; i++) items[i] = Value(type);
                return items;
            }
            for (ulong i = 0; i < kvs; i++)
            {
                string key = Str();
                f.Metadata[key] = Value(r.ReadUInt32());
            }
            for (ulong i = 0; i < tensors; i++)
            {
                string name = Str();
                var shape = new long[r.ReadUInt32()];
                for (int d = 0; d < shape.Length; d++) shape[d] = (long)r.ReadUInt64();
                f.Tensors[name] = new TensorInfo(name, shape, r.ReadUInt32(), r.ReadUInt64());
            }
            uint alignment = f.Metadata.TryGetValue("general.alignment", out var al) ? (uint)al : 32;
            f.DataStart = (r.BaseStream.Position + alignment - 1) / alignment * alignment;
            return f;
        }

        public ReadOnlySpan<byte> Data(TensorInfo t, long offset, int count) => Bytes.AsSpan((int)(DataStart + (long)t.Offset + offset), count);
    }

    [Fact]
    public async Task Export_gguf_writes_the_deepseek2_layout_and_the_weights_read_back()
    {
        string config = Path.Combine(_scratch, "config-in.json");
        File.WriteAllText(config, SmallConfig);
        string dir = Path.Combine(_scratch, "model");
        var (code, _, error) = await Run("init-random", "--config", config, "--out", dir, "--quant", "int4-all");
        Assert.True(code == 0, error);
        string gguf = Path.Combine(_scratch, "model.gguf");
        (code, var output, error) = await Run("export-gguf", "--model", dir, "--out", gguf, "--quant", "q4_0");
        Assert.True(code == 0, error);
        Assert.Contains("wrote", output);
        Assert.Contains("tensors", error); // progress
        Assert.DoesNotContain('\u001b', output + error); // captured output: plain lines, no terminal progress bar
        Assert.False(File.Exists(gguf + ".partial"));

        var f = GgufFile.Read(gguf);
        Assert.Equal(3u, f.Version);
        Assert.Equal("deepseek2", f.Metadata["general.architecture"]);
        Assert.Equal(3u, f.Metadata["deepseek2.block_count"]);
        Assert.Equal(1u, f.Metadata["deepseek2.leading_dense_block_count"]);
        Assert.Equal(64u, f.Metadata["deepseek2.attention.kv_lora_rank"]);
        Assert.Equal(24u, f.Metadata["deepseek2.attention.key_length"]);
        Assert.False(f.Metadata.ContainsKey("deepseek2.attention.q_lora_rank"));
        Assert.Equal(300, ((object[])f.Metadata["tokenizer.ggml.tokens"]).Length);
        Assert.Equal("gpt2", f.Metadata["tokenizer.ggml.model"]);

        const uint F32 = 0, Q4 = 2;
        var expected = new List<(string Name, uint Type, long[] Shape)>
        {
            ("token_embd.weight", Q4, [96, 300]), ("output_norm.weight", F32, [96]), ("output.weight", Q4, [96, 300]),
        };
        for (int l = 0; l < 3; l++)
        {
            string p = $"blk.{l}.";
            expected.AddRange(
            [
                (p + "attn_norm.weight", F32, [96]), (p + "attn_q.weight", Q4, [96, 4 * 24]),
                (p + "attn_kv_a_mqa.weight", Q4, [96, 64 + 8]), (p + "attn_kv_a_norm.weight", F32, [64]),
                (p + "attn_kv_b.weight", Q4, [64, 4 * 32]), (p + "attn_k_b.weight", F32, [16, 4 * 64]),
                (p + "attn_v_b.weight", Q4, [64, 4 * 16]), (p + "attn_output.weight", Q4, [4 * 16, 96]),
                (p + "ffn_norm.weight", F32, [96]),
            ]);
            if (l == 0)
                expected.AddRange([(p + "ffn_gate.weight", Q4, [96, 160]), (p + "ffn_up.weight", Q4, [96, 160]), (p + "ffn_down.weight", Q4, [160, 96])]);
            else
                expected.AddRange(
                [
                    (p + "ffn_gate_inp.weight", F32, [96, 8]), (p + "exp_probs_b.bias", F32, [8]),
                    (p + "ffn_gate_exps.weight", Q4, [96, 64, 8]), (p + "ffn_up_exps.weight", Q4, [96, 64, 8]),
                    (p + "ffn_down_exps.weight", Q4, [64, 96, 8]),
                    (p + "ffn_gate_shexp.weight", Q4, [96, 128]), (p + "ffn_up_shexp.weight", Q4, [96, 128]),
                    (p + "ffn_down_shexp.weight", Q4, [128, 96]),
                ]);
        }
        Assert.Equal(expected.Count, f.Tensors.Count);
        foreach (var (name, type, shape) in expected)
        {
            Assert.True(f.Tensors.TryGetValue(name, out var t), $"missing tensor {name}");
            Assert.True(type == t!.Type, $"{name}: type {t.Type}, expected {type}");
            Assert.Equal(shape, t.Shape);
            Assert.Equal(0ul, t.Offset % 32);
        }

        using var model = KimiModel.Load(dir);
        // One Q4_0 row of an expert (expert 5, row 7 of ffn_down_exps) dequantizes to within one step of the source row.
        var down = model.Layers[2].Moe!.Experts[5].Down;
        var source = new float[down.Cols];
        MatrixKernels.DecodeRow(down, 7, source);
        var info = f.Tensors["blk.2.ffn_down_exps.weight"];
        long rowBytes = 64 / 32 * 18;
        var back = new float[64];
        GgufWriter.DequantizeQ4_0(f.Data(info, (5L * 96 + 7) * rowBytes, (int)rowBytes), back);
        for (int block = 0; block < 2; block++)
        {
            float step = source.Skip(block * 32).Take(32).Max(MathF.Abs) / 8;
            for (int j = block * 32; j < block * 32 + 32; j++)
                Assert.True(MathF.Abs(back[j] - source[j]) <= step * 1.001f + 1e-6f, $"element {j}: {back[j]} vs {source[j]} (step {step})");
        }
        Assert.Contains(source, v => v != 0);

        // F32 tensors hold the exact values: the router and attn_k_b (the transposed key part of kv_b_proj).
        var router = model.Layers[1].Moe!.Router;
        var routerRow = new float[96];
        MatrixKernels.DecodeRow(router, 3, routerRow);
        var gateInp = f.Tensors["blk.1.ffn_gate_inp.weight"];
        for (int j = 0; j < 96; j++)
            Assert.Equal(routerRow[j], BinaryPrimitives.ReadSingleLittleEndian(f.Data(gateInp, (3L * 96 + j) * 4, 4)));
        var kvB = model.Layers[1].Attention.KvBProj;
        var kvRow = new float[kvB.Cols];
        MatrixKernels.DecodeRow(kvB, 2 * 32 + 5, kvRow); // head 2, nope dim 5
        var kB = f.Tensors["blk.1.attn_k_b.weight"];
        Assert.Equal(kvRow[11], BinaryPrimitives.ReadSingleLittleEndian(f.Data(kB, ((2L * 64 + 11) * 16 + 5) * 4, 4)));
    }

    [Fact]
    public void Q4_0_matches_ggml_reference_rounding()
    {
        var x = new float[32];
        for (int i = 0; i < 32; i++) x[i] = (i - 10) * 0.25f;  // max magnitude 5.25 at i = 31 (positive)
        var q = new byte[18];
        GgufWriter.QuantizeQ4_0(x, q);
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(q);
        Assert.Equal((float)(Half)(5.25f / -8), d);
        Assert.Equal(0, q[2 + 15] >> 4); // x = 5.25 → q = 0 (d < 0)
        var back = new float[32];
        GgufWriter.DequantizeQ4_0(q, back);
        for (int i = 0; i < 32; i++) Assert.True(MathF.Abs(back[i] - x[i]) <= MathF.Abs(d) / 2 + 1e-3f, $"{i}: {back[i]} vs {x[i]}");
    }

    [Fact]
    public async Task Export_gguf_rejects_an_unknown_quant()
    {
        var (code, _, error) = await Run("export-gguf", "--model", _scratch, "--out", Path.Combine(_scratch, "x.gguf"), "--quant", "q8_k");
        Assert.Equal(2, code);
        Assert.Contains("--quant", error);
    }
}
