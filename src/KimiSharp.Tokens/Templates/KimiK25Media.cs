namespace KimiSharp.Tokens.Templates;

/// <summary>
/// What Kimi K2.5's chat template writes for media content parts (see <see cref="ChatTemplate.BuiltInKimiK25"/>),
/// for the code that expands them into vision tokens after rendering.
/// </summary>
public static class KimiK25Media
{
    /// <summary>
    /// Written for each content part whose <c>type</c> is <c>image</c> or <c>image_url</c>, followed by a newline. It
    /// tokenizes to four special tokens plus the text <c>image</c>; the single <c>&lt;|media_pad|&gt;</c>
    /// (the checkpoint's <c>media_placeholder_token_id</c>, 163605) stands for all of the image's vision tokens and is
    /// repeated to their count before the forward pass.
    /// </summary>
    public const string ImagePlaceholder = "<|media_begin|>image<|media_content|><|media_pad|><|media_end|>";

    /// <summary>
    /// Written for each content part whose <c>type</c> is <c>video</c> or <c>video_url</c>, followed by a newline. It is
    /// a text marker, not a token of the Kimi vocabulary: the media processor replaces it, before tokenization, with
    /// one <c>&lt;|media_begin|&gt;video&lt;|media_content|&gt;&lt;|media_pad|&gt;&lt;|media_end|&gt;</c> span per video
    /// chunk. Left in place it tokenizes as ordinary text.
    /// </summary>
    public const string VideoPlaceholder = "<|kimi_k25_video_placeholder|>";
}
