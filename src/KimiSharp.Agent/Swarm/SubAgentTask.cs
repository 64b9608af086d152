using System.Globalization;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Swarm;

/// <summary>One sub-task of a <c>spawn_agents</c> call.</summary>
/// <param name="Task">What the sub-agent must do; its whole context besides <paramref name="Instructions"/>.</param>
/// <param name="Instructions">System instructions; null: the swarm's default.</param>
/// <param name="Tools">The tools it may use, by name; null: all of them.</param>
/// <param name="MaxSteps">Model steps at most; null: the swarm's default.</param>
/// <param name="MaxTokens">Generated tokens at most; null: the swarm's default.</param>
/// <param name="Timeout">Wall-clock limit; null: the swarm's default.</param>
/// <param name="RunInBackground">Return its id at once and collect the report later with <c>collect_agents</c>.</param>
/// <param name="Model">A model name from <see cref="SwarmOptions.Models"/>; null: the swarm's model.</param>
public sealed record SubAgentTask(string Task, string? Instructions = null, IReadOnlyList<string>? Tools = null, int? MaxSteps = null,
    long? MaxTokens = null, TimeSpan? Timeout = null, bool RunInBackground = false, string? Model = null)
{
    internal const string TaskKey = "task", InstructionsKey = "instructions", ToolsKey = "tools", MaxStepsKey = "max_steps",
        MaxTokensKey = "max_tokens", TimeoutKey = "timeout_seconds", BackgroundKey = "run_in_background", ModelKey = "model";

    private static readonly HashSet<string> Known = [TaskKey, InstructionsKey, ToolsKey, MaxStepsKey, MaxTokensKey, TimeoutKey, BackgroundKey, ModelKey];

    /// <summary>Reads one task object; every problem is added to <paramref name="errors"/> under <paramref name="path"/>.</summary>
    internal static SubAgentTask? Parse(JsonNode? node, string path, IReadOnlyCollection<string> toolNames, IReadOnlyCollection<string> modelNames,
        List<string> errors)
    {
        if (node is not JsonObject json)
        {
            errors.Add($"{path} must be an object with a 'task'");
            return null;
        }
        int before = errors.Count;
        foreach (var (key, _) in json)
            if (!Known.Contains(key)) errors.Add($"{path}: unknown field '{key}' (known: {string.Join(", ", Known)})");

        string? task = String(json, TaskKey, path, errors);
        if (task is null && !json.ContainsKey(TaskKey)) errors.Add($"{path}: 'task' is required");
        else if (task is { } t && t.Trim().Length == 0) errors.Add($"{path}: 'task' must not be empty");
        string? instructions = String(json, InstructionsKey, path, errors);
        string? model = String(json, ModelKey, path, errors);
        if (model is not null && !modelNames.Contains(model))
            errors.Add($"{path}: unknown model '{model}'" + (modelNames.Count > 0 ? $" (available: {string.Join(", ", modelNames)})" : " (only the default model is available)"));

        List<string>? tools = null;
        if (json[ToolsKey] is JsonNode toolsNode)
        {
            if (toolsNode is not JsonArray array) errors.Add($"{path}: 'tools' must be an array of tool names");
            else
            {
                tools = [];
                foreach (var item in array)
                {
                    if (item is JsonValue v && v.TryGetValue(out string? name))
                    {
                        if (!toolNames.Contains(name)) errors.Add($"{path}: unknown tool '{name}' (available: {string.Join(", ", toolNames)})");
                        else if (!tools.Contains(name)) tools.Add(name);
                    }
                    else errors.Add($"{path}: 'tools' must hold tool names (strings)");
                }
            }
        }

        int? maxSteps = (int?)Integer(json, MaxStepsKey, path, int.MaxValue, errors);
        long? maxTokens = Integer(json, MaxTokensKey, path, long.MaxValue, errors);
        TimeSpan? timeout = null;
        if (json[TimeoutKey] is JsonNode timeoutNode)
        {
            if (timeoutNode is JsonValue v && v.TryGetValue(out double seconds) && double.IsFinite(seconds) && seconds > 0 && seconds < 1e7)
                timeout = TimeSpan.FromSeconds(seconds);
            else errors.Add($"{path}: 'timeout_seconds' must be a positive number of seconds");
        }
        bool background = false;
        if (json[BackgroundKey] is JsonNode backgroundNode)
        {
            if (backgroundNode is JsonValue v && v.TryGetValue(out bool b)) background = b;
            else errors.Add($"{path}: 'run_in_background' must be true or false");
        }
        return errors.Count > before || task is null ? null
            : new SubAgentTask(task, instructions, tools, maxSteps, maxTokens, timeout, background, model);
    }

    private static string? String(JsonObject json, string key, string path, List<string> errors)
    {
        if (json[key] is not JsonNode node) return null;
        if (node is JsonValue v && v.TryGetValue(out string? s)) return s;
        errors.Add($"{path}: '{key}' must be a string");
        return null;
    }

    private static long? Integer(JsonObject json, string key, string path, long max, List<string> errors)
    {
        if (json[key] is not JsonNode node) return null;
        if (node is JsonValue v && v.TryGetValue(out double d) && d >= 1 && d <= max && d == Math.Floor(d)) return (long)d;
        errors.Add(string.Create(CultureInfo.InvariantCulture, $"{path}: '{key}' must be a whole number from 1 to {max}"));
        return null;
    }
}
