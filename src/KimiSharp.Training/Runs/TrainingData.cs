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

    public long TextTokens => _text.Length;
    public int Conversations => _conversations.Count;

    public TrainingData(TrainConfig config, KimiTokenizer tokenizer, ChatTemplate template)
    {
        _pad = tokenizer.PadId ?? 0;
        var text = new List<int>();
        foreach (string file in config.TextFiles)
            text.AddRange(tokenizer.Encode(File.ReadAllText(file), allowSpecial: false));
        _text = text.ToArray();
        if (_text.Length > 0 && _text.Length <= config.SequenceLength)
            throw new FormatException($"the text files hold {_text.Length} tokens, fewer than seq_len + 1 = {config.SequenceLength + 1}");

        int assistant = tokenizer.TokenToId(KimiSpecialTokens.ImAssistant) ?? -1;
        int middle = tokenizer.TokenToId(KimiSpecialTokens.ImMiddle) ?? -1;
        int end = tokenizer.TokenToId(KimiSpecialTokens.ImEnd) ?? -1;
        foreach (string file in config.ConversationFiles)
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
                var messages = record["messages"] as JsonArray ?? throw new FormatException($"{file}, line {lineNumber}: no 'messages' array");
                string rendered = template.Render(messages, record["tools"] as JsonArray, addGenerationPrompt: false);
                var tokens = tokenizer.Encode(rendered, allowSpecial: true).ToArray();
                _conversations.Add((tokens, AssistantMask(tokens, assistant, middle, end)));
            }
        }
        if (_text.Length == 0 && _conversations.Count == 0) throw new FormatException("the training data is empty");
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
                var (tokens, turnMask) = _conversations[random.Next(_conversations.Count)];
                for (int i = 0; i < seq; i++)
                {
                    bool has = i < tokens.Length;
                    inputs[b * seq + i] = has ? tokens[i] : _pad;
                    bool target = i + 1 < tokens.Length;
                    targets[b * seq + i] = target ? tokens[i + 1] : -1;
                    mask[b * seq + i] = target ? turnMask[i + 1] : 0;
                }
            }
        }
        return (inputs, targets, mask);
    }
}
