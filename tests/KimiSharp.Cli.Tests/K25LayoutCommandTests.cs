using System.Text.Json.Nodes;
using KimiSharp.Model;
using KimiSharp.Model.Safetensors;
using KimiSharp.Vision;

namespace KimiSharp.Cli.Tests;

/// <summary><c>kimi init-random</c> writes the released K2.5 layout; <c>info</c>, <c>logits</c> and <c>image-features</c> read it.</summary>
public sealed class K25LayoutCommandTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("kimi-k25-cli-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static JsonObject VisionConfigJson() => new()
    {
        ["vt_hidden_size"] = 32, ["vt_intermediate_size"] = 48, ["vt_num_hidden_layers"] = 1, ["vt_num_attention_heads"] = 4,
        ["patch_size"] = 14, ["init_pos_emb_height"] = 4, ["init_pos_emb_width"] = 4, ["init_pos_emb_time"] = 4,
        ["merge_kernel_size"] = new JsonArray(2, 2),
    };

    /// <summary>A config.json shaped like the released one: the small text model under text_config, a tiny tower beside it.</summary>
    private string WriteK25Config()
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("KimiK25ForConditionalGeneration"),
            ["model_type"] = "kimi_k25",
            ["text_config"] = JsonNode.Parse(Kimi.SmallConfig(40)),
            ["vision_config"] = VisionConfigJson(),
        };
        string path = Path.Combine(_scratch, "k25-config.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("int4")]
    [InlineData("fp8")]
    public async Task Logits_of_the_K25_layout_equal_those_of_the_K2_layout_byte_for_byte(string quant)
    {
        string k25 = Path.Combine(_scratch, "k25"), k2 = Path.Combine(_scratch, "k2");
        var (code, output, error) = await Kimi.Run("init-random", "--config", WriteK25Config(), "--out", k25, "--quant", quant, "--seed", "3");
        Assert.True(code == 0, error);
        Assert.Contains("Kimi K2.5 layout", output);
        (code, _, error) = await Kimi.Run("init-random", "--config", WriteK25Config(), "--out", k2, "--quant", quant, "--seed", "3", "--layout", "k2");
        Assert.True(code == 0, error);
        using (var tensors = CheckpointTensors.Open(k25))
        {
            Assert.Contains("language_model.model.layers.0.self_attn.kv_b_proj.weight", tensors.Names);
            Assert.Contains("vision_tower.encoder.blocks.0.wqkv.weight", tensors.Names);
            Assert.DoesNotContain(tensors.Names, n => n.StartsWith("model.", StringComparison.Ordinal) || n.StartsWith("lm_head", StringComparison.Ordinal));
        }
        using (var tensors = CheckpointTensors.Open(k2))
            Assert.Contains("model.layers.0.self_attn.kv_b_proj.weight", tensors.Names);

        string a = Path.Combine(_scratch, "k25.f32"), b = Path.Combine(_scratch, "k2.f32");
        (code, _, error) = await Kimi.Run("logits", "--model", k25, "--tokens", "1,2,3,250,7", "--out", a);
        Assert.True(code == 0, error);
        Assert.DoesNotContain("warning", error);
        (code, _, error) = await Kimi.Run("logits", "--model", k2, "--tokens", "1,2,3,250,7", "--out", b);
        Assert.True(code == 0, error);
        Assert.Equal(5 * 300 * 4, new FileInfo(a).Length);
        Assert.Equal(File.ReadAllBytes(b), File.ReadAllBytes(a));
    }

    [Fact]
    public async Task Info_names_the_architecture_and_the_vision_tower()
    {
        string k25 = Path.Combine(_scratch, "k25");
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", WriteK25Config(), "--out", k25, "--quant", "int4")).Code);
        var (code, output, error) = await Kimi.Run("info", "--model", k25);
        Assert.True(code == 0, error);
        Assert.Contains("KimiK25ForConditionalGeneration (language model tensors under language_model.)", output);
        Assert.Contains("MoonViT tower present: 1 blocks, width 32, 4 heads, 14-pixel patches", output);
        Assert.Contains("projector to 96", output);

        string k2 = Path.Combine(_scratch, "k2");
        string plain = Path.Combine(_scratch, "plain.json");
        File.WriteAllText(plain, Kimi.SmallConfig(40));
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", plain, "--out", k2, "--quant", "bf16")).Code);
        (code, output, error) = await Kimi.Run("info", "--model", k2);
        Assert.True(code == 0, error);
        Assert.Contains("architecture DeepseekV3ForCausalLM", output);
        Assert.DoesNotContain("vision", output);

        // A tower whose tensors do not match its vision_config is reported, not hidden.
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(k25, "config.json")))!.AsObject();
        config["vision_config"]!["vt_intermediate_size"] = 40;
        File.WriteAllText(Path.Combine(k25, "config.json"), config.ToJsonString());
        (code, output, error) = await Kimi.Run("info", "--model", k25);
        Assert.True(code == 0, error);
        Assert.Contains("vision_config present, but the tower cannot run", output);
        Assert.Contains("mlp.fc0.weight", output);
    }

    [Fact]
    public async Task Layout_k25_without_a_vision_config_adds_the_tiny_tower_and_the_byte_tokenizer_places_media_pad()
    {
        string plain = Path.Combine(_scratch, "plain.json");
        File.WriteAllText(plain, Kimi.SmallConfig(40));
        string dir = Path.Combine(_scratch, "k25");
        var (code, _, error) = await Kimi.Run("init-random", "--config", plain, "--out", dir, "--quant", "bf16", "--layout", "k25", "--tokenizer", "bytes");
        Assert.True(code == 0, error);
        using (var model = KimiModel.Load(dir))
        {
            Assert.Equal("language_model.", model.Config.TensorPrefix);
            Assert.Equal(512, model.Config.VocabSize);
        }
        var vision = VisionConfig.Load(dir);
        // 256 byte ranks, then Kimi's specials at K2's offsets: <|media_pad|> (163605 in K2) is 256 + 21.
        Assert.Equal((96, (int?)277), (vision.TextHiddenSize, vision.MediaPlaceholderTokenId));
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")))!;
        Assert.Equal("<|media_pad|>", (string?)tokenizer["added_tokens_decoder"]!["277"]!["content"]);
        using var weights = VisionWeights.Load(dir, vision);
        Assert.Equal(RandomVisionCheckpoint.Tiny().NumHiddenLayers, weights.Blocks.Count);
    }

    [Fact]
    public async Task Image_features_read_the_K25_folder()
    {
        string dir = Path.Combine(_scratch, "k25");
        Assert.Equal(0, (await Kimi.Run("init-random", "--config", WriteK25Config(), "--out", dir, "--quant", "int4")).Code);
        string image = Path.Combine(_scratch, "square.png");
        File.WriteAllBytes(image, ImageFeaturesCommandTests.Png(56, 56));
        string output = Path.Combine(_scratch, "features.f32");
        var (code, _, error) = await Kimi.Run("image-features", "--model", dir, "--image", image, "--out", output);
        Assert.True(code == 0, error);
        // 56×56 pixels = 4×4 patches = 2×2 tokens of the text width 96.
        Assert.Equal(4 * 96 * 4, new FileInfo(output).Length);
    }
}
