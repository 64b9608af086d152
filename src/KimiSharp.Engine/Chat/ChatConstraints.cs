using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Engine.Chat;

/// <summary>Builds the decoding constraint a chat request needs (tool_choice, response_format), or null.</summary>
internal static partial class ChatConstraints
{
    public static ITokenConstraint? For(ChatRequest request, KimiChatService service)
    {
        if (request.ToolChoice is ToolChoice.NoneChoice && service.Tokenizer.TokenToId(KimiSpecialTokens.ToolCallsSectionBegin) is int section)
            return new BannedTokens([section]);
        return ForStructured(request, service);
    }

    /// <summary>Forbids a fixed set of tokens (e.g. the tool-call section when tool_choice is none).</summary>
    private sealed class BannedTokens(int[] tokens) : ITokenConstraint
    {
        public void Mask(Span<float> logits)
        {
            foreach (int t in tokens) if ((uint)t < (uint)logits.Length) logits[t] = float.NegativeInfinity;
        }

        public void Accept(int token) { }
        public bool IsComplete => false;
    }
}
