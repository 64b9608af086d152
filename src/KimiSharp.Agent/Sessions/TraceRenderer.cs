using System.Globalization;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Sessions;

/// <summary>Renders a session file for people (<c>kimi trace show FILE</c>): prompts, thinking, calls with timings, answers, totals.</summary>
public static class TraceRenderer
{
    /// <param name="afterRecord">Called after each record is rendered (the swarm trace draws sub-agent sessions under their spawning call).</param>
    public static void Render(string path, TextWriter output, bool showReasoning = true, int clip = 400, Action<JsonObject, TextWriter>? afterRecord = null)
    {
        var (records, torn) = AgentSession.ReadRecords(path);
        if (records.Count == 0) throw new InvalidDataException($"{path} holds no session records");
        var totals = (Input: 0L, Cached: 0L, Output: 0L, Cost: 0.0, Steps: 0, Calls: 0, Errors: 0, Runs: 0);
        var callStarts = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            string type = r["type"]?.GetValue<string>() ?? "";
            string time = r["time"]?.GetValue<string>() is { } t && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
                ? at.ToString("HH:mm:ss", CultureInfo.InvariantCulture) : "--:--:--";
            switch (type)
            {
                case AgentSession.Start:
                    output.WriteLine($"session {r["id"]}  started {r["time"]}");
                    foreach (var (key, value) in r)
                        if (key is not ("type" or "time" or "id")) output.WriteLine($"  {key}: {value?.ToJsonString().Trim('"')}");
                    output.WriteLine();
                    break;
                case AgentSession.Message when r["message"] is JsonObject m:
                    string role = AgentMessages.Role(m);
                    if (role == "user") output.WriteLine($"{time} ▶ user: {Clip(AgentMessages.Text(m["content"]), clip * 4)}");
                    else if (role == "assistant")
                    {
                        if (showReasoning && AgentMessages.Text(m["reasoning_content"]) is { Length: > 0 } thought)
                            output.WriteLine($"{time}   thinking: {Clip(thought, clip)}");
                        if (AgentMessages.Text(m["content"]) is { Length: > 0 } text)
                            output.WriteLine($"{time}   {(m["tool_calls"] is JsonArray ? "says" : "answer")}: {Clip(text, clip * 4)}");
                    }
                    break;
                case AgentSession.ToolCall:
                    callStarts[r["id"]?.GetValue<string>() ?? ""] = r;
                    totals.Calls++;
                    output.WriteLine($"{time}   → {r["name"]}({Clip(r["arguments"]?.GetValue<string>() ?? "", clip)})");
                    break;
                case AgentSession.ToolResult:
                    bool error = r["is_error"]?.GetValue<bool>() == true;
                    if (error) totals.Errors++;
                    output.WriteLine($"{time}   ← {(error ? "error " : "")}{Clip(r["content"]?.GetValue<string>() ?? "", clip)}  ({Ms(r["ms"])})");
                    break;
                case AgentSession.Step:
                    totals.Steps++;
                    totals.Input += r["input_tokens"]?.GetValue<long>() ?? 0;
                    totals.Cached += r["cached_input_tokens"]?.GetValue<long>() ?? 0;
                    totals.Output += r["output_tokens"]?.GetValue<long>() ?? 0;
                    totals.Cost += r["cost"]?.GetValue<double>() ?? 0;
                    output.WriteLine($"{time}   · step {r["step"]}: {r["input_tokens"]} in ({r["cached_input_tokens"]} cached), {r["output_tokens"]} out, {Ms(r["ms"])}");
                    break;
                case AgentSession.Compaction:
                    output.WriteLine($"{time}   ⟲ context compacted at ~{r["tokens_before"]} tokens: {Clip(r["summary"]?.GetValue<string>() ?? "", clip)}");
                    break;
                case AgentSession.Notice:
                    output.WriteLine($"{time}   ! {r["kind"]}: {r["text"]}");
                    break;
                case AgentSession.RunEnd:
                    totals.Runs++;
                    output.WriteLine($"{time} ■ run ended: {r["stop_reason"]}" + (r["steps"] is JsonNode s ? $" after {s} steps, {r["tool_calls"]} tool calls" : "")
                        + (r["error"] is JsonNode why ? $" — {why.GetValue<string>()}" : ""));
                    output.WriteLine();
                    break;
            }
            afterRecord?.Invoke(r, output);
        }
        var unanswered = callStarts.Keys.Count(id => !records.Any(x => x["type"]?.GetValue<string>() == AgentSession.ToolResult && x["id"]?.GetValue<string>() == id));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"totals: {totals.Runs} run(s), {totals.Steps} steps, {totals.Calls} tool calls ({totals.Errors} errors), {totals.Input:N0} input tokens ({totals.Cached:N0} cached), {totals.Output:N0} output tokens, cost {totals.Cost:0.####}"));
        if (unanswered > 0) output.WriteLine($"{unanswered} tool call(s) have no recorded result (the process stopped while they ran)");
        if (torn) output.WriteLine("the last line was cut short (the process was killed while writing it)");
    }

    private static string Ms(JsonNode? ms) => ms is null ? "" : string.Create(CultureInfo.InvariantCulture, $"{ms.GetValue<double>():0} ms");

    private static string Clip(string text, int max)
    {
        text = text.Replace("\r", "").Replace("\n", " ⏎ ");
        return text.Length <= max ? text : text[..max] + $"… (+{text.Length - max} chars)";
    }
}
