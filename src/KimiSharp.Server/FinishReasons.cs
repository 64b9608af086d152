using KimiSharp.Tokens.Parsing;

namespace KimiSharp.Server;

/// <summary>How each API names a <see cref="FinishReason"/>: the one place for each mapping.</summary>
internal static class FinishReasons
{
    /// <summary>OpenAI's <c>finish_reason</c>. A cancelled request has no reader, so it never reaches a client.</summary>
    public static string OpenAi(FinishReason reason) => reason switch
    {
        FinishReason.Length => "length",
        FinishReason.ToolCalls => "tool_calls",
        FinishReason.Stop or FinishReason.StopSequence or FinishReason.Cancelled => "stop",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "no OpenAI finish_reason for it"),
    };

    /// <summary>Anthropic's <c>stop_reason</c>.</summary>
    public static string Anthropic(FinishReason reason) => reason switch
    {
        FinishReason.Length => "max_tokens",
        FinishReason.ToolCalls => "tool_use",
        FinishReason.StopSequence => "stop_sequence",
        FinishReason.Stop or FinishReason.Cancelled => "end_turn",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "no Anthropic stop_reason for it"),
    };
}
