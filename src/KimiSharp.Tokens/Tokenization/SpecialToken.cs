namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// One entry of the special-token table (ids at and above the number of BPE ranks).
/// </summary>
/// <param name="Id">Token id.</param>
/// <param name="Content">The literal text of the token, e.g. <c>&lt;|im_end|&gt;</c>.</param>
/// <param name="Special">
/// The <c>special</c> flag from <c>tokenizer_config.json</c>'s <c>added_tokens_decoder</c>. Only flagged tokens are
/// dropped by <c>skipSpecialTokens</c> decoding; Kimi leaves the tool-call markers unflagged so that text-based tool
/// parsers still see them.
/// </param>
public sealed record SpecialToken(int Id, string Content, bool Special = true);
