using System.Globalization;
using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>One passage of a document that a query matched.</summary>
/// <param name="File">Path relative to the indexed folder, '/'-separated.</param>
/// <param name="Line">1-based line where the passage starts.</param>
public sealed record DocHit(string File, int Line, double Score, string Snippet);

/// <summary>
/// Okapi BM25 over passages (blank-line separated paragraphs, merged up to a size) of the .md/.txt files in a folder.
/// Terms are lower-cased runs of letters and digits; no stemming, so ranking is by exact word overlap.
/// </summary>
public sealed class Bm25Index
{
    public const double K1 = 1.2;
    public const double B = 0.75;

    private static readonly string[] Extensions = [".md", ".markdown", ".txt", ".rst"];
    private const int PassageTargetChars = 800;

    private readonly List<Passage> _passages = [];
    private readonly Dictionary<string, int> _documentFrequency = new(StringComparer.Ordinal);
    private double _averageLength;

    private sealed record Passage(string File, int Line, string Text, Dictionary<string, int> Terms, int Length);

    public int PassageCount => _passages.Count;

    /// <summary>Indexes every .md, .markdown, .txt and .rst file under <paramref name="folder"/>.</summary>
    public static Bm25Index FromFolder(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"docs folder '{folder}' does not exist");
        var index = new Bm25Index();
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);
        foreach (string file in files)
            index.Add(Path.GetRelativePath(folder, file).Replace(Path.DirectorySeparatorChar, '/'), File.ReadAllText(file));
        return index;
    }

    /// <summary>Adds a document, split into passages.</summary>
    public void Add(string name, string text)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(text);
        string[] lines = text.ReplaceLineEndings("\n").Split('\n');
        var current = new StringBuilder();
        int start = 0;
        for (int i = 0; i <= lines.Length; i++)
        {
            bool end = i == lines.Length;
            bool blank = !end && string.IsNullOrWhiteSpace(lines[i]);
            if ((end || blank) && current.Length >= PassageTargetChars / 2 || end)
            {
                Flush(name, start, current);
                start = i + 1;
                continue;
            }
            if (blank && current.Length == 0)
            {
                start = i + 1;
                continue;
            }
            current.Append(lines[i]).Append('\n');
            if (current.Length >= PassageTargetChars)
            {
                Flush(name, start, current);
                start = i + 1;
            }
        }
        _averageLength = _passages.Count == 0 ? 0 : _passages.Average(p => (double)p.Length);
    }

    /// <summary>The <paramref name="topK"/> best passages for <paramref name="query"/>, best first; ties keep index order.</summary>
    public IReadOnlyList<DocHit> Search(string query, int topK)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        List<string> terms = Tokenize(query).Distinct(StringComparer.Ordinal).ToList();
        if (terms.Count == 0 || _passages.Count == 0) return [];

        int n = _passages.Count;
        var scored = new List<(int Index, double Score)>();
        for (int p = 0; p < n; p++)
        {
            Passage passage = _passages[p];
            double score = 0;
            foreach (string term in terms)
            {
                if (!passage.Terms.TryGetValue(term, out int tf)) continue;
                int df = _documentFrequency[term];
                double idf = Math.Log(1 + (n - df + 0.5) / (df + 0.5));
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * passage.Length / _averageLength));
            }
            if (score > 0) scored.Add((p, score));
        }
        return scored
            .OrderByDescending(s => s.Score).ThenBy(s => s.Index)
            .Take(topK)
            .Select(s => new DocHit(_passages[s.Index].File, _passages[s.Index].Line, s.Score, _passages[s.Index].Text))
            .ToList();
    }

    public static IEnumerable<string> Tokenize(string text)
    {
        var term = new StringBuilder();
        foreach (char c in text)
        {
            if (char.IsLetterOrDigit(c))
            {
                term.Append(char.ToLowerInvariant(c));
                continue;
            }
            if (term.Length > 0)
            {
                yield return term.ToString();
                term.Clear();
            }
        }
        if (term.Length > 0) yield return term.ToString();
    }

    private void Flush(string name, int startLine, StringBuilder text)
    {
        if (text.Length == 0) return;
        string passageText = text.ToString().TrimEnd();
        text.Clear();
        var terms = new Dictionary<string, int>(StringComparer.Ordinal);
        int length = 0;
        foreach (string term in Tokenize(passageText))
        {
            terms[term] = terms.GetValueOrDefault(term) + 1;
            length++;
        }
        if (length == 0) return;
        foreach (string term in terms.Keys) _documentFrequency[term] = _documentFrequency.GetValueOrDefault(term) + 1;
        _passages.Add(new Passage(name, startLine + 1, passageText, terms, length));
    }

    internal static string FormatScore(double score) => score.ToString("0.00", CultureInfo.InvariantCulture);
}
