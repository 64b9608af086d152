using System.Text;
using KimiSharp.Tokens.Tokenization;

namespace KimiSharp.Tokens.Tests.Tokenization;

public class IncrementalDecoderTests
{
    private static KimiTokenizer Tok => TestVocabulary.Tokenizer;

    /// <summary>Ids 0..255 are the single bytes in the test vocabulary, so any byte split can be produced.</summary>
    private static int[] ByteIds(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    [Fact]
    public void Multibyte_characters_split_across_tokens_are_held_back()
    {
        var decoder = Tok.CreateIncrementalDecoder();
        int[] ids = ByteIds("é世😀"); // C3 A9 | E4 B8 96 | F0 9F 98 80
        string[] expected = ["", "é", "", "", "世", "", "", "", "😀"];
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.Equal(expected[i], decoder.Push(ids[i]));
            Assert.Equal(expected[i].Length == 0, decoder.HasPendingBytes);
        }

        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void Incomplete_sequence_at_the_end_becomes_replacement_char()
    {
        var decoder = Tok.CreateIncrementalDecoder();
        Assert.Equal("a", decoder.Push('a'));
        Assert.Equal("", decoder.Push(0xE4));
        Assert.Equal("", decoder.Push(0xB8));
        Assert.True(decoder.HasPendingBytes);
        Assert.Equal("\uFFFD", decoder.Flush());
        Assert.False(decoder.HasPendingBytes);
        Assert.Equal("b", decoder.Push('b')); // reusable after Flush
    }

    [Fact]
    public void Invalid_bytes_are_replaced_as_soon_as_known()
    {
        var decoder = Tok.CreateIncrementalDecoder();
        Assert.Equal("", decoder.Push(0xE4));
        Assert.Equal("\uFFFDa", decoder.Push('a')); // E4 then 'a': E4 can never complete
        Assert.Equal("\uFFFD", decoder.Push(0xFF));
    }

    [Fact]
    public void Special_tokens_decode_to_their_names_or_are_skipped()
    {
        int imEnd = TestVocabulary.Id(KimiSpecialTokens.ImEndId);
        int callBegin = TestVocabulary.Id(KimiSpecialTokens.ToolCallBeginId);
        Assert.Equal("<|im_end|>", Tok.CreateIncrementalDecoder().Push(imEnd));
        var skipping = Tok.CreateIncrementalDecoder(skipSpecialTokens: true);
        Assert.Equal("", skipping.Push(imEnd));
        Assert.Equal("<|tool_call_begin|>", skipping.Push(callBegin)); // unflagged: kept
    }

    [Fact]
    public void Reset_drops_pending_bytes()
    {
        var decoder = Tok.CreateIncrementalDecoder();
        decoder.Push(0xF0);
        decoder.Reset();
        Assert.False(decoder.HasPendingBytes);
        Assert.Equal("x", decoder.Push('x'));
    }

    [Fact]
    public void Streaming_output_equals_one_shot_decode_for_random_ids()
    {
        var rng = new Random(1234);
        // Bias towards bytes that start or continue multi-byte sequences, plus merged tokens and specials.
        int[] interesting = [0xC3, 0xA9, 0xE4, 0xB8, 0x96, 0xF0, 0x9F, 0x98, 0x80, 0xBF, 0xC0, 0xFF, 0xED, 0xA0, 'a', ' '];
        for (int round = 0; round < 500; round++)
        {
            int n = rng.Next(1, 20);
            var ids = new int[n];
            for (int i = 0; i < n; i++)
            {
                ids[i] = rng.Next(4) switch
                {
                    0 => rng.Next(Tok.VocabSize),
                    1 => rng.Next(256, Tok.NumBaseTokens),
                    _ => interesting[rng.Next(interesting.Length)],
                };
            }

            var decoder = Tok.CreateIncrementalDecoder();
            var sb = new StringBuilder();
            foreach (int id in ids)
            {
                sb.Append(decoder.Push(id));
            }

            sb.Append(decoder.Flush());
            Assert.Equal(Tok.Decode(ids), sb.ToString());
        }
    }

    [Fact]
    public void Streaming_real_encodings_reproduces_the_text_piecewise()
    {
        const string text = "混合 text: 日本語、emoji 👨‍👩‍👧 and café — done.";
        var decoder = Tok.CreateIncrementalDecoder();
        var sb = new StringBuilder();
        foreach (int id in Tok.Encode(text, allowSpecial: false))
        {
            string piece = decoder.Push(id);
            Assert.DoesNotContain('\uFFFD', piece);
            sb.Append(piece);
        }

        Assert.Equal(text, sb.Append(decoder.Flush()).ToString());
    }
}
