using System.Text.Json;
using System.Text.Json.Nodes;
using KimiSharp.Tokens.Templates;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Training.Runs;

/// <summary>
/// Token streams to train on: text files as one long stream sampled in windows, and conversations rendered through
/// the chat template with the loss only on assistant turns. Batch <c>s</c> is a pure function of the seed and
/// <c>s</c>, so a resumed run sees exactly the batches an uninterrupted one would.
/// </summary>
public sealed class TrainingData
{
    private readonly int[] _text;
    private readonly List<(int[] Tokens, float[] Mask)> _conversations = [];
    private readonly int _pad;
    private readonly bool _pack;

    public long TextTokens => _text.Length;
    public int Conversations => _conversations.Count;

    public TrainingData(TrainConfig config, KimiTokenizer tokenizer, ChatTemplate template)
    {
        _pad = tokenizer.PadId ?? 0;
        _pack = config.Pack;
        var text = new List<int>();
        foreach (string file in config.TextFiles)
            text.AddRange(tokenizer.Encode(File.ReadAllText(file), allowSpecial: false));
        _text = text.ToArray();
        if (_text.Length > 0 && _text.Length <= config.SequenceLength)
            throw new FormatException($"the text files hold {_text.Length} tokens, fewer than seq_len + 1 = {config.SequenceLength + 1}");

        int assistant = tokenizer.TokenToId(KimiSpecialTokens.ImAssistant) ?? -1;
        int middle = tokenizer.TokenToId(KimiSpecialTokens.ImMiddle) ?? -1;
        int end = tokenizer.TokenToId(KimiSpecialTokens.ImEnd) ?? -1;
        foreach (var (file, lineNumber, record) in Records(config.ConversationFiles))
        {
            if (record["text"] is JsonValue textValue)
            {
                _conversations.Add(PreRendered(record, textValue, file, lineNumber, tokenizer, assistant, middle, end));
                continue;
            }
            var tokens = tokenizer.Encode(Render(record, template, file, lineNumber), allowSpecial: true).ToArray();
            _conversations.Add((tokens, AssistantMask(tokens, assistant, middle, end)));
        }
        if (_text.Length == 0 && _conversations.Count == 0) throw new FormatException("the training data is empty");
    }

    /// <summary>The JSON object on each non-blank line of the conversation files; a line that is not one is named by file and line.</summary>
    public static IEnumerable<(string File, int Line, JsonObject Record)> Records(IEnumerable<string> files)
    {
        foreach (string file in files)
        {
            int lineNumber = 0;
            foreach (string line in File.ReadLines(file))
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                JsonObject record;
                try { record = JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not an object"); }
                catch (Exception e) when (e is JsonException or FormatException)
                { throw new FormatException($"{file}, line {lineNumber}: not a JSON object ({e.Message})"); }
                yield return (file, lineNumber, record);
            }
        }
    }

    /// <summary>A <c>{"messages", "tools"?}</c> record rendered through the chat template, as the model trains on it.</summary>
    public static string Render(JsonObject record, ChatTemplate template, string file, int lineNumber)
    {
        var messages = record["messages"] as JsonArray ?? throw new FormatException($"{file}, line {lineNumber}: no 'messages' array (or 'text')");
        return template.Render(messages, record["tools"] as JsonArray, addGenerationPrompt: false);
    }

    /// <summary>
    /// A record already rendered through the chat template: <c>{"text", "train_from"?, "weight"?}</c>. Assistant turns
    /// that start at or after character <c>train_from</c> are trained (earlier ones are context only), each token's
    /// loss weighted by <c>weight</c> (a policy-gradient advantage may be negative). <c>train_from</c> must fall on a
    /// special-token boundary so the two halves tokenize as the whole does.
    /// </summary>
    private static (int[] Tokens, float[] Mask) PreRendered(JsonObject record, JsonValue textValue, string file, int lineNumber,
        KimiTokenizer tokenizer, int assistant, int middle, int end)
    {
        string where = $"{file}, line {lineNumber}";
        if (!textValue.TryGetValue(out string? text)) throw new FormatException($"{where}: 'text' must be a string");
        int trainFrom = 0;
        if (record["train_from"] is JsonNode from && (!from.AsValue().TryGetValue(out trainFrom) || trainFrom < 0 || trainFrom > text.Length))
            throw new FormatException($"{where}: 'train_from' must be a character offset within the text (0…{text.Length})");
        float weight = 1;
        if (record["weight"] is JsonNode w && (!w.AsValue().TryGetValue(out double wv) || !double.IsFinite(wv)))
            throw new FormatException($"{where}: 'weight' must be a finite number");
        else if (record["weight"] is JsonNode w2) weight = (float)w2.GetValue<double>();
        var context = tokenizer.Encode(text[..trainFrom], allowSpecial: true);
        var tokens = context.Concat(tokenizer.Encode(text[trainFrom..], allowSpecial: true)).ToArray();
        var mask = AssistantMask(tokens, assistant, middle, end);
        for (int i = 0; i < mask.Length; i++) mask[i] = i < context.Count ? 0 : mask[i] * weight;
        return (tokens, mask);
    }

    /// <summary>1 on the tokens of each assistant turn after its header (through its &lt;|im_end|&gt;), 0 elsewhere.</summary>
    public static float[] AssistantMask(int[] tokens, int assistant, int middle, int end)
    {
        var mask = new float[tokens.Length];
        bool inHeader = false, inTurn = false;
        for (int i = 0; i < tokens.Length; i++)
        {
            int t = tokens[i];
            if (inTurn) { mask[i] = 1; if (t == end) inTurn = false; continue; }
            if (t == assistant) inHeader = true;
            else if (inHeader && t == middle) { inHeader = false; inTurn = true; }
        }
        return mask;
    }

    private int[]? _byLength;

    /// <summary>The first <paramref name="take"/> tokens of a conversation at <paramref name="at"/>, with next-token targets that stay inside it.</summary>
    private static void Place(int[] tokens, float[] turnMask, int[] inputs, int[] targets, float[] mask, int at, int take)
    {
        for (int i = 0; i < take; i++)
        {
            inputs[at + i] = tokens[i];
            bool target = i + 1 < tokens.Length;
            targets[at + i] = target ? tokens[i + 1] : -1;
            mask[at + i] = target ? turnMask[i + 1] : 0;
        }
    }

    /// <summary>
    /// A length-bucketed batch of conversations: one conversation per row (truncated to <paramref name="maxSeq"/>),
    /// neighbours in length order so little is padding, as many rows as fit <paramref name="tokenBudget"/>. Returns
    /// the rows and the padded length; a pure function of the seed and <paramref name="step"/>.
    /// </summary>
    public (int[] Inputs, int[] Targets, float[] Mask, int Rows, int Seq) BucketBatch(int step, int tokenBudget, int maxSeq, int seed)
    {
        if (_conversations.Count == 0) throw new InvalidOperationException("bucketed batches need conversations");
        _byLength ??= Enumerable.Range(0, _conversations.Count).OrderBy(i => _conversations[i].Tokens.Length).ThenBy(i => i).ToArray();
        var random = new Random(unchecked(seed * 1_000_003 + step * 7919));
        int anchor = random.Next(_byLength.Length);
        int seq = Math.Min(maxSeq, _conversations[_byLength[anchor]].Tokens.Length);
        int rows = Math.Clamp(tokenBudget / Math.Max(seq, 1), 1, _byLength.Length);
        // The anchor and the rows − 1 conversations just shorter than it (or the shortest ones).
        int first = Math.Max(0, anchor - rows + 1);
        seq = Math.Min(maxSeq, Enumerable.Range(first, rows).Max(k => _conversations[_byLength[Math.Min(k, _byLength.Length - 1)]].Tokens.Length));
        rows = Math.Clamp(Math.Min(rows, tokenBudget / Math.Max(seq, 1)), 1, rows); // near the short end the window reaches past the anchor
        var inputs = new int[rows * seq];
        var targets = new int[rows * seq];
        var mask = new float[rows * seq];
        for (int r = 0; r < rows; r++)
        {
            var (tokens, turnMask) = _conversations[_byLength[Math.Min(first + r, _byLength.Length - 1)]];
            int take = Math.Min(seq, tokens.Length);
            Place(tokens, turnMask, inputs, targets, mask, r * seq, take);
            for (int i = take; i < seq; i++) { inputs[r * seq + i] = _pad; targets[r * seq + i] = -1; }
        }
        return (inputs, targets, mask, rows, seq);
    }

    /// <summary>
    /// The inputs, next-token targets (−1 = none) and loss mask of batch <paramref name="step"/>: rows alternate
    /// between text windows and conversations when both exist.
    /// </summary>
    public (int[] Inputs, int[] Targets, float[] Mask) Batch(int step, int batch, int seq, int seed)
    {
        var random = new Random(unchecked(seed * 1_000_003 + step * 7919));
        var inputs = new int[batch * seq];
        var targets = new int[batch * seq];
        var mask = new float[batch * seq];
        for (int b = 0; b < batch; b++)
        {
            bool useText = _conversations.Count == 0 || (_text.Length > 0 && random.Next(2) == 0);
            if (useText)
            {
                int start = random.Next(_text.Length - seq);
                for (int i = 0; i < seq; i++)
                {
                    inputs[b * seq + i] = _text[start + i];
                    targets[b * seq + i] = _text[start + i + 1];
                    mask[b * seq + i] = 1;
                }
            }
            else
            {
                // Whole conversations fill the row one after another (packing); a row ends padded when the next
                // drawn one does not fit. Targets never cross from one conversation into the next.
                int filled = 0;
                while (true)
                {
                    var (tokens, turnMask) = _conversations[random.Next(_conversations.Count)];
                    if (filled > 0 && filled + tokens.Length > seq) break;
                    int take = Math.Min(tokens.Length, seq - filled);
                    Place(tokens, turnMask, inputs, targets, mask, b * seq + filled, take);
                    filled += take;
                    if (!_pack || filled >= seq) break;
                }
                for (int i = filled; i < seq; i++) { inputs[b * seq + i] = _pad; targets[b * seq + i] = -1; }
            }
        }
        return (inputs, targets, mask);
    }
}
