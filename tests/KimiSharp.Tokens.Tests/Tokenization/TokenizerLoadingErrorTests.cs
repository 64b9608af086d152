using System.Text;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Tests.Tokenization;

public class TokenizerLoadingErrorTests
{
    private const string Good = "YQ== 0\nYg== 1\nYw== 2\n"; // a b c

    [Theory]
    [InlineData("YQ== 0\n!!!! 1\nYw== 2\n", 2, "not valid base64")]
    [InlineData("YQ== 0\nYg==\nYw== 2\n", 2, "missing rank")]
    [InlineData("YQ== 0\nYg== 1\nYw== 1\n", 3, "duplicate rank 1 (first used on line 2)")]
    [InlineData("YQ== 0\nYg== one\nYw== 2\n", 2, "'one' is not a non-negative integer")]
    [InlineData("YQ== 0\nYg== 1.5\n", 2, "not a non-negative integer")]
    [InlineData("YQ== 0\nYg== -1\n", 2, "not a non-negative integer")]
    [InlineData("YQ== 0\nYg== 1 extra\n", 2, "exactly two fields")]
    [InlineData("YQ== 0\nYg== 7\n", 2, "rank 7 is out of range")]
    [InlineData("YQ== 0\nYg== 1\nYQ== 2\n", 3, "duplicate token bytes (same as line 1)")]
    [InlineData("YQ== 0\n\nYg== 1\n   \n", 4, "blank")]
    [InlineData("YQ 0\n", 1, "not valid base64")]
    public void Malformed_ranks_name_the_file_and_line(string content, int line, string problem)
    {
        using var dir = new TempDirectory();
        string path = dir.Write("tiktoken.model", content);
        var ex = Assert.Throws<TokenizerFormatException>(() => TiktokenVocabulary.Load(path));
        Assert.Equal(path, ex.SourceName);
        Assert.Equal(line, ex.LineNumber);
        Assert.Contains(problem, ex.Message);
        Assert.StartsWith($"{path}, line {line}: ", ex.Message);
    }

    [Fact]
    public void Malformed_ranks_in_a_model_folder_surface_from_FromModelDirectory()
    {
        using var dir = new TempDirectory();
        dir.Write("tiktoken.model", "YQ== 0\nYg== x\n");
        dir.Write("tokenizer_config.json", "{}");
        var ex = Assert.Throws<TokenizerFormatException>(() => KimiTokenizer.FromModelDirectory(dir.Path));
        Assert.Contains("tiktoken.model, line 2:", ex.Message);
    }

    [Fact]
    public void Valid_variants_load()
    {
        var crlf = TiktokenVocabulary.Load(new MemoryStream(Encoding.ASCII.GetBytes("YQ== 0\r\nYg==\t1\r\n\r\nYw== 2")));
        Assert.Equal(3, crlf.Count);
        Assert.Equal("c"u8.ToArray(), crlf.GetBytes(2).ToArray());
        var shuffled = TiktokenVocabulary.Load(new MemoryStream(Encoding.ASCII.GetBytes("Yw== 2\nYQ== 0\nYg== 1\n")));
        Assert.Equal("a"u8.ToArray(), shuffled.GetBytes(0).ToArray());
    }

    [Fact]
    public void Empty_ranks_file_is_rejected()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() => TiktokenVocabulary.Load(new MemoryStream(), "empty.tiktoken"));
        Assert.Contains("empty.tiktoken", ex.Message);
        Assert.Null(ex.LineNumber);
    }

    [Fact]
    public void Stream_errors_use_the_given_source_name()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() =>
            KimiTokenizer.FromRanks(new MemoryStream("YQ== 0\nnope\n"u8.ToArray()), options: new KimiTokenizerOptions { SourceName = "my.tiktoken" }));
        Assert.StartsWith("my.tiktoken, line 2: ", ex.Message);
    }

    [Fact]
    public void Missing_folder_and_files_are_named()
    {
        string missing = Path.Combine(Path.GetTempPath(), "no-such-kimi-" + Guid.NewGuid().ToString("N"));
        var dirEx = Assert.Throws<DirectoryNotFoundException>(() => KimiTokenizer.FromModelDirectory(missing));
        Assert.Contains(missing, dirEx.Message);

        using var dir = new TempDirectory();
        dir.Write("tokenizer_config.json", "{}");
        var ex = Assert.Throws<FileNotFoundException>(() => KimiTokenizer.FromModelDirectory(dir.Path));
        Assert.Contains(dir.Path, ex.Message);
        Assert.Contains("tiktoken.model", ex.Message);

        using var dir2 = new TempDirectory();
        dir2.Write("tiktoken.model", Good);
        var ex2 = Assert.Throws<FileNotFoundException>(() => KimiTokenizer.FromModelDirectory(dir2.Path));
        Assert.Contains("tokenizer_config.json", ex2.Message);
        Assert.Contains(dir2.Path, ex2.Message);
    }

    [Theory]
    [InlineData("{ \"added_tokens_decoder\": { ", null, "invalid JSON")]
    [InlineData("[1, 2]", null, "top level must be a JSON object")]
    [InlineData("{\n\"bos_token\": \"[BOS]\",\n  \"eos_token\": ,\n}", 3, "invalid JSON")]
    [InlineData("{ \"added_tokens_decoder\": [] }", null, "'added_tokens_decoder' must be an object")]
    [InlineData("{ \"added_tokens_decoder\": { \"x\": { \"content\": \"a\" } } }", null, "key 'x' is not a token id")]
    [InlineData("{ \"added_tokens_decoder\": { \"3\": { \"special\": true } } }", null, "entry 3 must be an object with a non-empty string 'content'")]
    [InlineData("{ \"added_tokens_decoder\": { \"3\": { \"content\": \"<a>\", \"special\": \"yes\" } } }", null, "'special' must be a boolean")]
    [InlineData("{ \"bos_token\": 5 }", null, "'bos_token' must be a string")]
    [InlineData("{ \"added_tokens_decoder\": { \"1\": { \"content\": \"<a>\" } } }", null, "ordinary rank")]
    [InlineData("{ \"added_tokens_decoder\": { \"3\": { \"content\": \"<a>\" }, \"4\": { \"content\": \"<a>\" } } }", null, "'<a>' is used for ids 3 and 4")]
    [InlineData("{ \"added_tokens_decoder\": { \"3\": { \"content\": \"<a>\" } }, \"eos_token\": \"<|im_end|>\" }", null, "eos_token '<|im_end|>' is not one of the special tokens")]
    public void Malformed_tokenizer_config_is_reported_with_the_file(string json, int? line, string problem)
    {
        using var dir = new TempDirectory();
        dir.Write("tiktoken.model", Good);
        string configPath = dir.Write("tokenizer_config.json", json);
        var ex = Assert.Throws<TokenizerFormatException>(() => KimiTokenizer.FromModelDirectory(dir.Path));
        Assert.Equal(configPath, ex.SourceName);
        Assert.Contains(configPath, ex.Message);
        Assert.Contains(problem, ex.Message);
        if (line is not null)
        {
            Assert.Equal(line, ex.LineNumber);
        }
    }

    [Fact]
    public void Config_token_strings_may_be_added_token_objects()
    {
        using var dir = new TempDirectory();
        dir.Write("tiktoken.model", Good);
        dir.Write("tokenizer_config.json", """
            {
              "added_tokens_decoder": { "3": { "content": "[BOS]", "special": true }, "4": { "content": "[EOS]", "special": true } },
              "bos_token": { "__type": "AddedToken", "content": "[BOS]", "lstrip": false },
              "eos_token": "[EOS]",
              "pad_token": null
            }
            """);
        var tok = KimiTokenizer.FromModelDirectory(dir.Path);
        Assert.Equal(3, tok.BosId);
        Assert.Equal(4, tok.EosId);
        Assert.Null(tok.PadId);
        Assert.Equal(3 + 256, tok.VocabSize);
        Assert.Equal("<|reserved_token_5|>", tok.IdToToken(5));
    }
}
