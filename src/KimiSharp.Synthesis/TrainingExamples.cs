using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Synthesis;

/// <summary>One rendered training record: the text, and the character offset from which assistant turns are trained.</summary>
public sealed record TrainingExample(string Text, int TrainFrom, double Weight = 1)
{
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["text"] = Text, ["train_from"] = TrainFrom };
        if (Weight != 1) o["weight"] = Weight;
        return o;
    }
}

/// <summary>
/// Renders trajectories into training text exactly as the agent loop shows them to the model: the chat template with
/// the tool declarations, reasoning kept for the current task's steps, and long runs cut by the
/// <see cref="ContextWindow"/>. A trajectory of S steps (the final answer counts as one) becomes one example per chunk
/// of W steps; each example shows the chunk before it as context and trains only its own W steps, which then see
/// precisely the context they get at inference.
/// </summary>
public sealed class TrainingExampleRenderer(ChatTemplate template, JsonArray tools, ContextWindow window)
{
    public ContextWindow Window => window;

    /// <summary>Number of chunks (examples) the trajectory yields.</summary>
    public int ChunkCount(JsonArray messages)
    {
        var (_, steps) = ContextWindow.Split(messages);
        int w = Math.Min(window.ChunkSteps, Math.Max(steps.Count, 1));
        return (steps.Count + w - 1) / w;
    }

    /// <summary>The example for chunk <paramref name="chunk"/> (0-based).</summary>
    public TrainingExample Render(JsonArray messages, int chunk, double weight = 1)
    {
        var (prefix, steps) = ContextWindow.Split(messages);
        int w = window.ChunkSteps;
        int firstTrained = checked(chunk * w);
        if (chunk < 0 || firstTrained >= steps.Count) throw new ArgumentOutOfRangeException(nameof(chunk), $"the trajectory has {ChunkCount(messages)} chunks");
        int end = (int)Math.Min((long)firstTrained + w, steps.Count);
        int firstVisible = window.FirstVisibleStep(firstTrained);

        var context = new JsonArray();
        foreach (var m in prefix) context.Add(m.DeepClone());
        for (int s = firstVisible; s < firstTrained; s++) foreach (var m in steps[s]) context.Add(m.DeepClone());
        string contextText = template.Render(context, tools, addGenerationPrompt: false);

        var visible = (JsonArray)context.DeepClone();
        JsonObject? final = null;
        for (int s = firstTrained; s < end; s++)
            foreach (var m in steps[s])
            {
                bool isFinal = s == steps.Count - 1 && m["role"]?.GetValue<string>() == "assistant" && m["tool_calls"] is null;
                if (isFinal) final = (JsonObject)m;
                else visible.Add(m.DeepClone());
            }
        string text = template.Render(visible, tools, addGenerationPrompt: final is not null);
        if (final is not null)
            text += "<think>" + (final["reasoning_content"]?.GetValue<string>() ?? "") + "</think>" + (final["content"]?.GetValue<string>() ?? "") + "<|im_end|>";
        if (!text.StartsWith(contextText, StringComparison.Ordinal))
            throw new InvalidOperationException("the chat template does not render a conversation as an extension of its beginning; cannot mark the trained part");
        return new TrainingExample(text, contextText.Length, weight);
    }

    /// <summary>
    /// Up to <paramref name="maxChunks"/> examples of a trajectory: all chunks when there are few, otherwise the first,
    /// the last, and others drawn at random.
    /// </summary>
    public IEnumerable<TrainingExample> Examples(JsonArray messages, int maxChunks, Random random, double weight = 1)
    {
        int count = ChunkCount(messages);
        IEnumerable<int> chosen = count <= maxChunks ? Enumerable.Range(0, count)
            : new[] { 0, count - 1 }.Concat(Enumerable.Range(1, count - 2).OrderBy(_ => random.Next()).Take(maxChunks - 2));
        foreach (int c in chosen) yield return Render(messages, c, weight);
    }
}
