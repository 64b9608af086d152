using System.Globalization;
using System.Text;
using KimiSharp.Agent.Tools;

namespace KimiSharp.Synthesis;

/// <summary>
/// A plain-text warm-up corpus that teaches in-context copying and recall before agentic SFT: lists repeated
/// verbatim, key=value records queried by key, and short fact paragraphs queried by entity and attribute. Tool use
/// is mostly copying (arguments from the request, answers from tool results); a small model trained only on
/// trajectories sees too few copy events to form the attention heads that do it, so they are learned here first.
/// Values are random, never the knowledge base's, so the model learns to read them from context, not to recall them.
/// </summary>
public static class RecallCorpus
{
    /// <summary>Document kinds, in the order <see cref="Document"/> cycles through them.</summary>
    public static readonly IReadOnlyList<string> Kinds = ["copy", "records", "facts"];

    /// <summary>Writes <paramref name="documents"/> documents, one per line, to <paramref name="path"/> (atomically); returns the characters written.</summary>
    public static long Write(string path, int documents, int seed, KnowledgeBase? knowledgeBase = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(documents);
        var kb = knowledgeBase ?? KnowledgeBase.Default;
        var random = new Random(seed);
        long characters = 0;
        string partial = path + ".partial";
        using (var writer = new StreamWriter(partial, false, new UTF8Encoding(false)))
        {
            for (int i = 0; i < documents; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                string line = Document(random, kb, Kinds[i % Kinds.Count]);
                writer.Write(line);
                writer.Write('\n');
                characters += line.Length + 1;
            }
        }
        File.Move(partial, path, overwrite: true);
        return characters;
    }

    /// <summary>One document of the given kind (see <see cref="Kinds"/>).</summary>
    public static string Document(Random random, KnowledgeBase kb, string kind) => kind switch
    {
        "copy" => Copy(random, kb),
        "records" => Records(random, kb),
        "facts" => Facts(random, kb),
        _ => throw new ArgumentException($"unknown recall document kind '{kind}'", nameof(kind)),
    };

    private static string Copy(Random random, KnowledgeBase kb)
    {
        var items = Enumerable.Range(0, random.Next(2, 9)).Select(_ => Item(random, kb)).ToArray();
        string list = string.Join(" ", items);
        return $"list: {list} again: {list}";
    }

    private static string Records(Random random, KnowledgeBase kb)
    {
        var keys = Distinct(random, kb, random.Next(2, 9));
        var values = keys.Select(_ => Item(random, kb, numbersOnly: true)).ToArray();
        var sb = new StringBuilder("records:");
        for (int i = 0; i < keys.Length; i++) sb.Append(' ').Append(keys[i]).Append('=').Append(values[i]).Append(';');
        int queries = random.Next(1, 4);
        for (int q = 0; q < queries; q++)
        {
            int k = random.Next(keys.Length);
            sb.Append(" get ").Append(keys[k]).Append(" → ").Append(values[k]).Append('.');
        }
        return sb.ToString();
    }

    private static string Facts(Random random, KnowledgeBase kb)
    {
        string[] attributes = ["population", "elevation", "founded", "area"];
        var names = Distinct(random, kb, random.Next(1, 5));
        var facts = new (string Attribute, string Value)[names.Length][];
        var sb = new StringBuilder();
        for (int i = 0; i < names.Length; i++)
        {
            facts[i] = attributes.OrderBy(_ => random.Next()).Take(random.Next(1, 3))
                .Select(a => (a, Number(random, a == "area" ? 2 : 0))).ToArray();
            sb.Append(names[i]).Append(" has ").Append(string.Join(" and ", facts[i].Select(f => $"{f.Attribute} {f.Value}"))).Append(". ");
        }
        int e = random.Next(names.Length);
        var (attribute, value) = facts[e][random.Next(facts[e].Length)];
        sb.Append("Q: ").Append(attribute).Append(" of ").Append(names[e]).Append("? A: ").Append(value);
        return sb.ToString();
    }

    private static string[] Distinct(Random random, KnowledgeBase kb, int count) =>
        kb.Entities.OrderBy(_ => random.Next()).Take(Math.Min(count, kb.Entities.Count)).Select(c => c.Name).ToArray();

    /// <summary>Something a tool call or an answer copies: a city name or a number in one of the forms tasks use.</summary>
    private static string Item(Random random, KnowledgeBase kb, bool numbersOnly = false)
    {
        int form = random.Next(numbersOnly ? 4 : 6);
        return form switch
        {
            0 => Number(random, 0),
            1 => Number(random, random.Next(1, 4)),
            2 => random.Next(1000, 1_000_000).ToString("N0", CultureInfo.InvariantCulture),   // 2,340
            3 => $"{Number(random, random.Next(0, 2))}%",
            _ => kb.Entities[random.Next(kb.Entities.Count)].Name,
        };
    }

    private static string Number(Random random, int decimals)
    {
        int digits = random.Next(1, 7);
        long low = digits == 1 ? 0 : (long)Math.Pow(10, digits - 1);
        long whole = random.NextInt64(low, (long)Math.Pow(10, digits));
        if (decimals == 0) return whole.ToString(CultureInfo.InvariantCulture);
        int fraction = random.Next((int)Math.Pow(10, decimals));
        return whole.ToString(CultureInfo.InvariantCulture) + "." + fraction.ToString(new string('0', decimals), CultureInfo.InvariantCulture);
    }
}
