using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Sessions;

/// <summary>
/// One agent session as a JSONL file: every event is appended (and flushed) as it happens — the session header, user
/// prompts, each assistant step (reasoning, content, calls), each tool call as it starts and its result with timing,
/// usage and cost per step, compactions, notices and the end of each run. The conversation is rebuilt from the file,
/// so a killed process resumes where it stopped: a tool call with a recorded result is never run again.
/// </summary>
public sealed class AgentSession : IDisposable
{
    /// <summary>The record types, in the <c>type</c> field of each line.</summary>
    public const string Start = "session", Message = "message", ToolCall = "tool_call", ToolResult = "tool_result", Step = "step",
        Compaction = "compaction", Notice = "notice", RunEnd = "run_end";

    private readonly StreamWriter _writer;
    private readonly PriceTable _prices;
    private readonly TimeProvider _clock;

    private AgentSession(string path, StreamWriter writer, JsonArray messages, SessionTotals totals, PriceTable prices, TimeProvider clock)
    {
        Path = path;
        _writer = writer;
        Messages = messages;
        Totals = totals;
        _prices = prices;
        _clock = clock;
    }

    /// <summary>The session's id (its file name without <c>.jsonl</c>).</summary>
    public string Id => System.IO.Path.GetFileNameWithoutExtension(Path);

    public string Path { get; }

    /// <summary>The conversation so far, as the next run should see it.</summary>
    public JsonArray Messages { get; private set; }

    /// <summary>Usage and cost over the whole session.</summary>
    public SessionTotals Totals { get; }

    /// <summary>Starts a new session file in <paramref name="directory"/>, with whatever header fields <paramref name="header"/> gives (model, workspace, ...).</summary>
    public static AgentSession Create(string directory, JsonObject? header = null, PriceTable? prices = null, TimeProvider? clock = null)
    {
        Directory.CreateDirectory(directory);
        clock ??= TimeProvider.System;
        string id = clock.GetUtcNow().ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8];
        string path = System.IO.Path.Combine(directory, id + ".jsonl");
        var writer = OpenWriter(path, FileMode.CreateNew);
        var session = new AgentSession(path, writer, [], new SessionTotals(), prices ?? PriceTable.Moonshot, clock);
        var record = header?.DeepClone().AsObject() ?? [];
        record["id"] = id;
        session.Write(Start, record);
        return session;
    }

    /// <summary>
    /// Opens an existing session to continue it: the conversation and totals are rebuilt from its records. A last line
    /// cut short by a crash is ignored (and the file repaired so new records start on a line of their own).
    /// </summary>
    public static AgentSession Resume(string path, PriceTable? prices = null, TimeProvider? clock = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"no session file at {path}", path);
        var (records, torn) = ReadRecords(path);
        if (records.Count == 0 || records[0]["type"]?.GetValue<string>() != Start)
            throw new InvalidDataException($"{path} is not a KimiSharp session (its first line is not a session header)");
        var messages = new JsonArray();
        var totals = new SessionTotals();
        foreach (var r in records) Apply(r, messages, totals);
        if (torn) TrimTornLine(path);
        var writer = OpenWriter(path, FileMode.Append);
        return new AgentSession(path, writer, messages, totals, prices ?? PriceTable.Moonshot, clock ?? TimeProvider.System);
    }

    /// <summary>The newest session file in <paramref name="directory"/>, or null.</summary>
    public static string? Latest(string directory) =>
        Directory.Exists(directory)
            ? new DirectoryInfo(directory).EnumerateFiles("*.jsonl").OrderByDescending(f => f.LastWriteTimeUtc).ThenByDescending(f => f.Name)
                .Select(f => f.FullName).FirstOrDefault()
            : null;

    /// <summary>Every record of a session file; the second value says whether the last line was cut short (and skipped).</summary>
    public static (List<JsonObject> Records, bool TornLastLine) ReadRecords(string path)
    {
        var records = new List<JsonObject>();
        var lines = File.ReadAllLines(path);
        bool torn = false;
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            try
            {
                records.Add(JsonNode.Parse(lines[i]) as JsonObject ?? throw new JsonException("not an object"));
            }
            catch (JsonException e)
            {
                // Only the last line can be half-written by a killed process; anything earlier is corruption.
                if (i == lines.Length - 1) { torn = true; break; }
                throw new InvalidDataException($"{path}, line {i + 1}: not a session record ({e.Message})", e);
            }
        }
        return (records, torn);
    }

    /// <summary>Appends a message the caller adds (a task, a system prompt).</summary>
    public void AddMessage(JsonObject message)
    {
        Messages.Add(message.DeepClone());
        Write(Message, new JsonObject { ["message"] = message.DeepClone() });
    }

    /// <summary>Passes a run's events through, recording each one before handing it on.</summary>
    public async IAsyncEnumerable<AgentEvent> Record(IAsyncEnumerable<AgentEvent> run, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var e in run.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            Record(e);
            yield return e;
        }
    }

    /// <summary>Records one event.</summary>
    public void Record(AgentEvent e)
    {
        switch (e)
        {
            case AgentEvent.MessageAdded added:
                Messages.Add(added.Message.DeepClone());
                Write(Message, new JsonObject { ["message"] = added.Message.DeepClone() });
                break;
            case AgentEvent.ToolCalled call:
                Write(ToolCall, new JsonObject { ["id"] = call.Id, ["name"] = call.Name, ["arguments"] = call.Arguments });
                break;
            case AgentEvent.ToolReturned result:
                double fee = result.Name is "search_docs" or "web_search" ? _prices.PerSearch : 0;
                if (result.Name is "search_docs" or "web_search") Totals.AddSearch(fee);
                Write(ToolResult, new JsonObject
                {
                    ["id"] = result.Id, ["name"] = result.Name, ["is_error"] = result.IsError,
                    ["ms"] = Math.Round(result.Elapsed.TotalMilliseconds, 1), ["content"] = result.Content, ["cost"] = fee,
                });
                break;
            case AgentEvent.StepCompleted step:
                double cost = _prices.Cost(step.Usage);
                Totals.Add(step.Usage, cost);
                Write(Step, new JsonObject
                {
                    ["step"] = step.Step, ["ms"] = Math.Round(step.Elapsed.TotalMilliseconds, 1), ["finish"] = step.FinishReason,
                    ["input_tokens"] = step.Usage.InputTokens, ["cached_input_tokens"] = step.Usage.CachedInputTokens,
                    ["output_tokens"] = step.Usage.OutputTokens, ["cost"] = cost,
                });
                break;
            case AgentEvent.Compacted compacted:
                Messages = (JsonArray)compacted.Messages.DeepClone();
                Write(Compaction, new JsonObject
                {
                    ["tokens_before"] = compacted.TokensBefore, ["summary"] = compacted.Summary, ["messages"] = compacted.Messages.DeepClone(),
                });
                break;
            case AgentEvent.Notice notice:
                Write(Notice, new JsonObject { ["kind"] = notice.Kind, ["text"] = notice.Text });
                break;
            case AgentEvent.Finished finished:
                Write(RunEnd, new JsonObject
                {
                    ["stop_reason"] = finished.Result.StopReason, ["steps"] = finished.Result.Steps, ["tool_calls"] = finished.Result.ToolCalls,
                    ["answer"] = finished.Result.FinalAnswer,
                });
                break;
        }
    }

    /// <summary>Records that the user stopped a run (its finished steps stay in the session).</summary>
    public void RecordCancelled() => Write(RunEnd, new JsonObject { ["stop_reason"] = "cancelled" });

    /// <summary>Records that a run ended without a result of its own (a sub-agent timed out, failed or was cancelled), and why.</summary>
    public void RecordStopped(string stopReason, string? error) =>
        Write(RunEnd, new JsonObject { ["stop_reason"] = stopReason, ["error"] = error });

    /// <summary>Replaces the conversation (e.g. after <c>/compact</c>), recorded as a compaction.</summary>
    public void ReplaceMessages(Compacted compacted, long tokensBefore) =>
        Record(new AgentEvent.Compacted(compacted.Messages, compacted.Summary, (int)Math.Min(int.MaxValue, tokensBefore)));

    private void Write(string type, JsonObject record)
    {
        var line = new JsonObject { ["type"] = type, ["time"] = _clock.GetUtcNow().ToString("O", CultureInfo.InvariantCulture) };
        foreach (var (key, value) in record.ToList())
        {
            record.Remove(key);
            line[key] = value;
        }
        _writer.Write(line.ToJsonString());
        _writer.Write('\n');
        _writer.Flush();
    }

    private static void Apply(JsonObject record, JsonArray messages, SessionTotals totals)
    {
        switch (record["type"]?.GetValue<string>())
        {
            case Message when record["message"] is JsonObject m:
                messages.Add(m.DeepClone());
                break;
            case Compaction when record["messages"] is JsonArray replaced:
                messages.Clear();
                foreach (var m in replaced) messages.Add(m!.DeepClone());
                break;
            case Step:
                totals.Add(new StepUsage(Long(record["input_tokens"]), Long(record["cached_input_tokens"]), Long(record["output_tokens"])),
                    record["cost"]?.GetValue<double>() ?? 0);
                break;
            case ToolResult when record["name"]?.GetValue<string>() is "search_docs" or "web_search":
                totals.AddSearch(record["cost"]?.GetValue<double>() ?? 0);
                break;
        }
    }

    private static long Long(JsonNode? node) => node?.GetValue<long>() ?? 0;

    private static StreamWriter OpenWriter(string path, FileMode mode) =>
        new(new FileStream(path, mode, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));

    private static void TrimTornLine(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int end = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.SetLength(end);
    }

    public void Dispose() => _writer.Dispose();
}

/// <summary>Usage and cost summed over a session.</summary>
public sealed class SessionTotals
{
    public long InputTokens { get; private set; }
    public long CachedInputTokens { get; private set; }
    public long OutputTokens { get; private set; }
    public int Steps { get; private set; }
    public int Searches { get; private set; }
    public double Cost { get; private set; }

    internal void AddSearch(double fee)
    {
        Searches++;
        Cost += fee;
    }

    internal void Add(StepUsage usage, double cost)
    {
        InputTokens += usage.InputTokens;
        CachedInputTokens += usage.CachedInputTokens;
        OutputTokens += usage.OutputTokens;
        Cost += cost;
        Steps++;
    }
}

/// <summary>
/// Prices per million tokens (input served from the endpoint's cache, input not cached, output) and per search call.
/// The default is Moonshot's list price for Kimi K2 in US dollars; a JSON file can give another.
/// </summary>
public sealed record PriceTable(double InputCacheHitPerMillion, double InputCacheMissPerMillion, double OutputPerMillion,
    double PerSearch = 0, string Currency = "USD")
{
    /// <summary>Moonshot's published kimi-k2 pricing: $0.15 / M cached input, $0.60 / M input, $2.50 / M output, $0.005 per search.</summary>
    public static PriceTable Moonshot { get; } = new(0.15, 0.60, 2.50, 0.005);

    /// <summary>A local model costs nothing.</summary>
    public static PriceTable Free { get; } = new(0, 0, 0);

    public double Cost(StepUsage usage)
    {
        long cached = Math.Min(usage.CachedInputTokens, usage.InputTokens);
        return (cached * InputCacheHitPerMillion + (usage.InputTokens - cached) * InputCacheMissPerMillion
            + usage.OutputTokens * OutputPerMillion) / 1e6;
    }

    /// <summary>Reads <c>{"input_cache_hit": 0.15, "input_cache_miss": 0.6, "output": 2.5, "per_search": 0.005, "currency": "USD"}</c> (per million tokens).</summary>
    public static PriceTable Load(string path)
    {
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("the file is not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a price table ({e.Message})", e); }
        var known = new HashSet<string> { "input_cache_hit", "input_cache_miss", "output", "per_search", "currency" };
        foreach (var (key, _) in json)
            if (!known.Contains(key)) throw new InvalidDataException($"{path}: unknown key '{key}' (known: {string.Join(", ", known)})");
        double Price(string key, bool required)
        {
            if (json[key] is null) return required ? throw new InvalidDataException($"{path}: '{key}' is required") : 0;
            return json[key] is JsonValue v && v.TryGetValue(out double d) && d >= 0 ? d
                : throw new InvalidDataException($"{path}: '{key}' must be a non-negative number");
        }
        return new PriceTable(Price("input_cache_hit", true), Price("input_cache_miss", true), Price("output", true), Price("per_search", false),
            json["currency"]?.GetValue<string>() ?? "USD");
    }
}
