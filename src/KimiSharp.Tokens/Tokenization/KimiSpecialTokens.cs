namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// Kimi K2's special tokens (ids 163584..163839; 163584 = the number of BPE ranks in K2's <c>tiktoken.model</c>).
/// The ids and names agree across every K2 source (research k2-architecture.md §4.1). The loaded
/// <c>tokenizer_config.json</c> is the authority at run time; these constants are for code that must name a token.
/// </summary>
public static class KimiSpecialTokens
{
    /// <summary>Number of mergeable ranks in K2's <c>tiktoken.model</c> (ids 0..163583).</summary>
    public const int NumBaseTokens = 163_584;

    /// <summary>Kimi reserves this many ids after the ranks for special tokens.</summary>
    public const int NumReservedSpecialTokens = 256;

    /// <summary>Total vocabulary (embedding rows): 163840.</summary>
    public const int VocabSize = NumBaseTokens + NumReservedSpecialTokens;

    public const string Bos = "[BOS]";
    public const string Eos = "[EOS]";
    public const string ImEnd = "<|im_end|>";
    public const string ImUser = "<|im_user|>";
    public const string ImAssistant = "<|im_assistant|>";
    public const string StartHeaderId = "<|start_header_id|>";
    public const string EndHeaderId = "<|end_header_id|>";
    public const string Eot = "[EOT]";
    public const string ImSystem = "<|im_system|>";
    public const string ToolCallsSectionBegin = "<|tool_calls_section_begin|>";
    public const string ToolCallsSectionEnd = "<|tool_calls_section_end|>";
    public const string ToolCallBegin = "<|tool_call_begin|>";
    public const string ToolCallArgumentBegin = "<|tool_call_argument_begin|>";
    public const string ToolCallEnd = "<|tool_call_end|>";
    public const string ImMiddle = "<|im_middle|>";
    public const string MediaBegin = "<|media_begin|>";
    public const string MediaContent = "<|media_content|>";
    public const string MediaEnd = "<|media_end|>";
    public const string MediaPad = "<|media_pad|>";
    public const string ThinkBegin = "<think>";
    public const string ThinkEnd = "</think>";
    public const string Unk = "[UNK]";
    public const string Pad = "[PAD]";

    public const int BosId = 163_584;
    public const int EosId = 163_585;
    public const int ImEndId = 163_586;
    public const int ImUserId = 163_587;
    public const int ImAssistantId = 163_588;
    public const int StartHeaderIdId = 163_590;
    public const int EndHeaderIdId = 163_591;
    public const int EotId = 163_593;
    public const int ImSystemId = 163_594;
    public const int ToolCallsSectionBeginId = 163_595;
    public const int ToolCallsSectionEndId = 163_596;
    public const int ToolCallBeginId = 163_597;
    public const int ToolCallArgumentBeginId = 163_598;
    public const int ToolCallEndId = 163_599;
    public const int ImMiddleId = 163_601;
    /// <summary>K2-Thinking / K2.5 only; K2-Instruct(-0905) has <c>&lt;|reserved_token_163602|&gt;</c> here.</summary>
    public const int MediaBeginId = 163_602;
    public const int MediaContentId = 163_603;
    public const int MediaEndId = 163_604;
    public const int MediaPadId = 163_605;
    /// <summary>K2-Thinking and later only.</summary>
    public const int ThinkBeginId = 163_606;
    public const int ThinkEndId = 163_607;
    public const int UnkId = 163_838;
    public const int PadId = 163_839;

    /// <summary>Name Kimi gives a special id that <c>added_tokens_decoder</c> does not name.</summary>
    public static string ReservedName(int id) => $"<|reserved_token_{id}|>";

    /// <summary>
    /// K2-Thinking's named special tokens. The <c>special</c> flags follow the K2 <c>tokenizer_config.json</c>
    /// (tool-call markers unflagged). The flags of the media and think tokens are not documented in any source we
    /// have; they are left unflagged here so that <c>skipSpecialTokens</c> decoding keeps the reasoning markers.
    /// </summary>
    public static IReadOnlyList<SpecialToken> K2Thinking { get; } =
    [
        new(BosId, Bos), new(EosId, Eos), new(ImEndId, ImEnd), new(ImUserId, ImUser),
        new(ImAssistantId, ImAssistant), new(StartHeaderIdId, StartHeaderId), new(EndHeaderIdId, EndHeaderId),
        new(EotId, Eot), new(ImSystemId, ImSystem),
        new(ToolCallsSectionBeginId, ToolCallsSectionBegin, false), new(ToolCallsSectionEndId, ToolCallsSectionEnd, false),
        new(ToolCallBeginId, ToolCallBegin, false), new(ToolCallArgumentBeginId, ToolCallArgumentBegin, false),
        new(ToolCallEndId, ToolCallEnd, false), new(ImMiddleId, ImMiddle),
        new(MediaBeginId, MediaBegin, false), new(MediaContentId, MediaContent, false),
        new(MediaEndId, MediaEnd, false), new(MediaPadId, MediaPad, false),
        new(ThinkBeginId, ThinkBegin, false), new(ThinkEndId, ThinkEnd, false),
        new(UnkId, Unk), new(PadId, Pad),
    ];
}
