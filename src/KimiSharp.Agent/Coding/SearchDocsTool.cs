using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>
/// search_docs: BM25 search over a local folder of documents, standing in for a web search. The index is built on
/// the first call and kept for the tool's lifetime.
/// </summary>
public sealed class SearchDocsTool(string docsFolder, CodingToolOptions options) : BuiltinFunction(
    "search_docs",
    "Search the local documentation by keywords. Returns the best-matching passages with their file names and line numbers.",
    """
    {
      "type": "object",
      "properties": {
        "query": { "type": "string", "minLength": 1, "description": "Keywords to search for." },
        "top_k": { "type": "integer", "minimum": 1, "maximum": 20, "description": "How many passages to return (default 5)." }
      },
      "required": ["query"],
      "additionalProperties": false
    }
    """,
    readOnly: true, needsApproval: false)
{
    public const int DefaultTopK = 5;
    private const int SnippetChars = 600;

    private readonly Lazy<Bm25Index> _index = new(() => Bm25Index.FromFolder(docsFolder), LazyThreadSafetyMode.ExecutionAndPublication);

    protected override ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string query = arguments.GetString("query");
        int topK = arguments.GetOptionalInt("top_k", 1, 20) ?? DefaultTopK;
        IReadOnlyList<DocHit> hits = _index.Value.Search(query, topK);
        if (hits.Count == 0) return ValueTask.FromResult($"no documents match '{query}'");

        var output = new StringBuilder();
        for (int i = 0; i < hits.Count; i++)
        {
            DocHit hit = hits[i];
            string snippet = hit.Snippet.Length > SnippetChars ? hit.Snippet[..SnippetChars] + "…" : hit.Snippet;
            output.Append($"[{i + 1}] {hit.File}:{hit.Line} (score {Bm25Index.FormatScore(hit.Score)})\n{snippet}\n\n");
        }
        return ValueTask.FromResult(TextFiles.Clip(output.ToString().TrimEnd() + "\n", options.MaxOutputChars));
    }
}
