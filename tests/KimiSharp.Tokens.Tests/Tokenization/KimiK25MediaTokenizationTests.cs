using System.Text.Json.Nodes;
using KimiSharp.Tokens.Templates;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Tests.Tokenization;

/// <summary>Prompts rendered by the Kimi K2.5 template, tokenized: media markers must come out as single special ids.</summary>
public class KimiK25MediaTokenizationTests
{
    private static KimiTokenizer Tok => TestVocabulary.Tokenizer;

    private static string Render(string messagesJson) =>
        ChatTemplate.BuiltInKimiK25().Render(JsonNode.Parse(messagesJson)!.AsArray());

    [Fact]
    public void The_media_markers_are_single_tokens_with_the_K25_ids()
    {
        (string Text, int KimiId)[] markers =
        [
            ("<|media_begin|>", 163_602), ("<|media_content|>", 163_603), ("<|media_end|>", 163_604), ("<|media_pad|>", 163_605),
        ];
        foreach (var (text, kimiId) in markers)
        {
            Assert.Equal([TestVocabulary.Id(kimiId)], Tok.Encode(text, allowSpecial: true));
            Assert.Equal(TestVocabulary.Id(kimiId), Tok.TokenToId(text));
            Assert.Equal(text, Tok.Decode([TestVocabulary.Id(kimiId)]));
        }
        Assert.Equal(163_605, KimiSpecialTokens.MediaPadId);
    }

    [Fact]
    public void An_image_part_tokenizes_to_begin_image_content_pad_end()
    {
        string prompt = Render("""[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}, {"type": "text", "text": "Describe."}]}]""");
        var ids = Tok.Encode(prompt, allowSpecial: true);

        int begin = ids.ToList().IndexOf(TestVocabulary.Id(KimiSpecialTokens.MediaBeginId));
        Assert.True(begin > 0, "no <|media_begin|> in the encoded prompt");
        var imageWord = Tok.Encode("image", allowSpecial: true);
        int[] expected =
        [
            TestVocabulary.Id(KimiSpecialTokens.MediaBeginId), .. imageWord,
            TestVocabulary.Id(KimiSpecialTokens.MediaContentId), TestVocabulary.Id(KimiSpecialTokens.MediaPadId),
            TestVocabulary.Id(KimiSpecialTokens.MediaEndId),
        ];
        Assert.Equal(expected, ids.Skip(begin).Take(expected.Length));
        Assert.All(imageWord, id => Assert.False(Tok.IsSpecial(id)));
        // Exactly one pad per image: the engine expands it to the image's vision-token count.
        Assert.Single(ids, id => id == TestVocabulary.Id(KimiSpecialTokens.MediaPadId));
        Assert.Equal(prompt, Tok.Decode(ids));
    }

    [Fact]
    public void Two_images_give_two_pads_in_order()
    {
        string prompt = Render("""[{"role": "user", "content": [{"type": "image", "image": "a"}, {"type": "text", "text": "vs"}, {"type": "image_url", "image_url": {"url": "b"}}]}]""");
        Assert.Equal(2, Tok.Encode(prompt, allowSpecial: true).Count(id => id == TestVocabulary.Id(KimiSpecialTokens.MediaPadId)));
    }

    [Fact]
    public void The_video_placeholder_is_text_that_must_be_replaced_before_tokenization()
    {
        string prompt = Render("""[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "clip.mp4"}}]}]""");
        Assert.Contains(KimiK25Media.VideoPlaceholder + "\n", prompt);

        // Not in the Kimi vocabulary: left in the prompt it becomes ordinary text tokens, no media id among them.
        Assert.Null(Tok.TokenToId(KimiK25Media.VideoPlaceholder));
        var ids = Tok.Encode(KimiK25Media.VideoPlaceholder, allowSpecial: true);
        Assert.True(ids.Count > 1);
        Assert.All(ids, id => Assert.False(Tok.IsSpecial(id)));
        Assert.Equal(KimiK25Media.VideoPlaceholder, Tok.Decode(ids));

        // Replaced by a chunk span, it tokenizes like an image span with "video" for "image".
        string chunk = "<|media_begin|>video<|media_content|><|media_pad|><|media_end|>";
        var chunkIds = Tok.Encode(prompt.Replace(KimiK25Media.VideoPlaceholder, chunk, StringComparison.Ordinal), allowSpecial: true);
        Assert.Single(chunkIds, id => id == TestVocabulary.Id(KimiSpecialTokens.MediaPadId));
        Assert.Single(chunkIds, id => id == TestVocabulary.Id(KimiSpecialTokens.MediaBeginId));
    }

    [Fact]
    public void Media_markers_in_user_text_are_not_special_when_special_tokens_are_disallowed()
    {
        var ids = Tok.Encode(KimiK25Media.ImagePlaceholder, allowSpecial: false);
        Assert.All(ids, id => Assert.False(Tok.IsSpecial(id)));
        Assert.Equal(KimiK25Media.ImagePlaceholder, Tok.Decode(ids));
    }

    [Fact]
    public void Thinking_and_instant_generation_prompts_end_in_the_think_token_ids()
    {
        var messages = JsonNode.Parse("""[{"role": "user", "content": "Hi"}]""")!.AsArray();
        var thinking = Tok.Encode(ChatTemplate.BuiltInKimiK25().Render(messages), allowSpecial: true);
        var instant = Tok.Encode(ChatTemplate.BuiltInKimiK25().Render(messages, extraVariables: new Dictionary<string, JsonNode?> { ["thinking"] = false }), allowSpecial: true);
        int assistant = TestVocabulary.Id(KimiSpecialTokens.ImAssistantId), middle = TestVocabulary.Id(KimiSpecialTokens.ImMiddleId);
        int open = TestVocabulary.Id(KimiSpecialTokens.ThinkBeginId), close = TestVocabulary.Id(KimiSpecialTokens.ThinkEndId);
        var assistantWord = Tok.Encode("assistant", allowSpecial: true);
        Assert.Equal([assistant, .. assistantWord, middle, open], thinking.TakeLast(assistantWord.Count + 3));
        Assert.Equal([assistant, .. assistantWord, middle, open, close], instant.TakeLast(assistantWord.Count + 4));
    }
}
