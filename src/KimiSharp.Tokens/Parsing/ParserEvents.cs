namespace KimiSharp.Tokens.Parsing;

/// <summary>An increment of parsed model output. Deltas of one kind may arrive split at any point.</summary>
public abstract record ParserEvent;

/// <summary>Text of the reasoning (inside <c>&lt;think&gt;…&lt;/think&gt;</c>).</summary>
public sealed record ReasoningDelta(string Text) : ParserEvent;

/// <summary>Text of the visible answer.</summary>
public sealed record ContentDelta(string Text) : ParserEvent;

/// <summary>A tool call's id is complete.</summary>
/// <param name="Index">0-based position of the call in this output (OpenAI's streaming <c>tool_calls[i].index</c>).</param>
/// <param name="Id">The id exactly as the model wrote it, trimmed: <c>functions.NAME:IDX</c>, where IDX counts calls over the whole conversation.</param>
/// <param name="Name">The function name: the id without the <c>functions.</c> prefix and without the last <c>:IDX</c>.</param>
public sealed record ToolCallStart(int Index, string Id, string Name) : ParserEvent;

/// <summary>Raw argument text of the call with <paramref name="Index"/>, as generated.</summary>
public sealed record ToolCallArgumentsDelta(int Index, string Text) : ParserEvent;

/// <summary>The call with <paramref name="Index"/> is closed.</summary>
/// <param name="ArgumentsJson">All argument text (whitespace-only arguments become <c>{}</c>).</param>
/// <param name="Error">Null when the arguments are one JSON object and the call was properly terminated; otherwise what is wrong. Parsing continues either way.</param>
public sealed record ToolCallEnd(int Index, string ArgumentsJson, string? Error) : ParserEvent;

/// <summary>The output is complete; always the last event.</summary>
public sealed record End(FinishReason Reason) : ParserEvent;

/// <summary>
/// Why an output ended: the one type used from the parser through the engine to the HTTP APIs, which name it in
/// their own words (OpenAI's <c>finish_reason</c>, Anthropic's <c>stop_reason</c>).
/// </summary>
public enum FinishReason
{
    /// <summary>The model ended its turn (<c>&lt;|im_end|&gt;</c> or a stop token) without calling tools.</summary>
    Stop,

    /// <summary>The model ended its turn after calling tools.</summary>
    ToolCalls,

    /// <summary>Generation was cut off (token limit or context limit), possibly inside a tool call.</summary>
    Length,

    /// <summary>A caller-given stop string appeared in the output (which ends before it).</summary>
    StopSequence,

    /// <summary>The caller cancelled; nobody is left to read the answer.</summary>
    Cancelled,
}
