using System.Text.Json.Nodes;

namespace KimiSharp.Agent;

/// <summary>
/// Context management for long tool-calling runs. A step is one assistant message plus the tool results that answer
/// it. Old steps are dropped in chunks of <see cref="ChunkSteps"/>: while generating step <c>i</c> the model sees the
/// conversation before the current task, the task's user message, and the steps from
/// <c>max(0, (⌊i / W⌋ − 1) · W)</c> to <c>i − 1</c> — always between W and 2W − 1 earlier steps once past the first
/// chunk. Because the cut only moves every W steps, a training example that shows steps <c>(k−1)W … (k+1)W − 1</c>
/// gives W steps exactly the context they get at inference; the running state the model needs (a total, the
/// current item) is carried in its reasoning and in the latest tool results, never only in the dropped steps.
/// </summary>
public sealed record ContextWindow(int ChunkSteps = 4)
{
    /// <summary>No window: every step stays visible.</summary>
    public static readonly ContextWindow Unlimited = new(int.MaxValue);

    /// <summary>Index of the first step visible while generating step <paramref name="step"/>.</summary>
    public int FirstVisibleStep(int step)
    {
        if (ChunkSteps <= 0) throw new ArgumentOutOfRangeException(nameof(ChunkSteps), "the chunk must hold at least one step");
        if (ChunkSteps == int.MaxValue) return 0;
        return Math.Max(0, (step / ChunkSteps - 1) * ChunkSteps);
    }

    /// <summary>
    /// Splits messages after the last user message into steps (an assistant message and the tool messages that follow it).
    /// Returns the prefix (everything up to and including the last user message) and the steps.
    /// </summary>
    public static (List<JsonNode> Prefix, List<List<JsonNode>> Steps) Split(JsonArray messages)
    {
        int lastUser = -1;
        for (int i = 0; i < messages.Count; i++)
            if (messages[i]?["role"]?.GetValue<string>() == "user") lastUser = i;
        var prefix = new List<JsonNode>();
        var steps = new List<List<JsonNode>>();
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw new ArgumentException($"message {i} is null");
            if (i <= lastUser) { prefix.Add(message); continue; }
            string role = message["role"]?.GetValue<string>() ?? "";
            if (role == "assistant" || steps.Count == 0) steps.Add([message]);
            else steps[^1].Add(message);
        }
        return (prefix, steps);
    }

    /// <summary>The messages the model sees while generating the next step (deep copies; the input is unchanged).</summary>
    public JsonArray Visible(JsonArray messages)
    {
        var (prefix, steps) = Split(messages);
        int first = FirstVisibleStep(steps.Count);
        var visible = new JsonArray();
        foreach (var m in prefix) visible.Add(m.DeepClone());
        for (int s = first; s < steps.Count; s++)
            foreach (var m in steps[s]) visible.Add(m.DeepClone());
        return visible;
    }
}
