using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Agent.Tests.Coding;

public class SearchDocsTests
{
    [Fact]
    public void Bm25RanksRareTermsAndShorterPassagesHigher()
    {
        var index = new Bm25Index();
        index.Add("kv.md", "The KV cache stores keys and values for attention. Paged KV cache blocks hold sixteen tokens.");
        index.Add("rope.md", "Rotary position embedding (RoPE) rotates query and key pairs by a position dependent angle.");
        index.Add("moe.md", "Mixture of experts routes each token to the top experts; the router picks eight experts.");
        index.Add("long.md", "Attention " + string.Join(" ", Enumerable.Repeat("filler words about many unrelated things", 20)));

        IReadOnlyList<DocHit> cache = index.Search("kv cache", 3);
        Assert.Equal("kv.md", cache[0].File);
        Assert.Single(cache);

        IReadOnlyList<DocHit> attention = index.Search("attention", 5);
        // Both mention attention once; the short passage wins through BM25's length normalisation.
        Assert.Equal(["kv.md", "long.md"], attention.Select(h => h.File));
        Assert.True(attention[0].Score > attention[1].Score);

        // "experts" occurs three times in moe.md, "token" once in moe.md and once in kv.md ("tokens" is a different term).
        IReadOnlyList<DocHit> experts = index.Search("token experts", 5);
        Assert.Equal("moe.md", experts[0].File);
        Assert.Empty(index.Search("quantum", 5));
        Assert.Empty(index.Search("  ,; ", 5));
    }

    [Fact]
    public void Bm25ScoreMatchesTheFormula()
    {
        var index = new Bm25Index();
        index.Add("a.txt", "apple banana");
        index.Add("b.txt", "cherry date elder fig");
        DocHit hit = Assert.Single(index.Search("apple", 1));
        double idf = Math.Log(1 + (2 - 1 + 0.5) / (1 + 0.5));
        double averageLength = (2 + 4) / 2.0;
        double expected = idf * 1 * (Bm25Index.K1 + 1) / (1 + Bm25Index.K1 * (1 - Bm25Index.B + Bm25Index.B * 2 / averageLength));
        Assert.Equal(expected, hit.Score, 1e-12);
    }

    [Fact]
    public void SplitsDocumentsIntoPassagesWithLineNumbers()
    {
        var index = new Bm25Index();
        string para = string.Join(" ", Enumerable.Repeat("lorem ipsum dolor", 30));
        index.Add("doc.md", $"# Title\n\n{para}\n\n{para}\n\nThe needle is here.\n");
        Assert.Equal(3, index.PassageCount);
        DocHit hit = Assert.Single(index.Search("needle", 3));
        Assert.Equal(7, hit.Line);
        Assert.Equal("The needle is here.", hit.Snippet);
    }

    [Fact]
    public async Task ToolSearchesAFolder()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(Path.Combine(temp.Outside, "guide"));
        File.WriteAllText(Path.Combine(temp.Outside, "guide", "server.md"), "Start the server with kimi serve --port 8000.");
        File.WriteAllText(Path.Combine(temp.Outside, "train.txt"), "Training uses the Muon optimizer.");
        File.WriteAllText(Path.Combine(temp.Outside, "image.png"), "server server server");
        var tool = new SearchDocsTool(temp.Outside, new CodingToolOptions());

        ToolResult result = await ToolCalls.CallAsync(tool, """{"query":"how to start the server","top_k":1}""");
        Assert.False(result.IsError);
        Assert.StartsWith("[1] guide/server.md:1 (score ", result.Content);
        Assert.EndsWith(")\nStart the server with kimi serve --port 8000.\n", result.Content);

        ToolResult none = await ToolCalls.CallAsync(tool, """{"query":"gardening"}""");
        Assert.Equal("no documents match 'gardening'", none.Content);
    }
}
