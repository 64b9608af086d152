using System.Text.Json.Nodes;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Tokens.Templates;
using static KimiSharp.Tokens.Tests.Parsing.ParserTestHelpers;

namespace KimiSharp.Tokens.Tests.Parsing;

/// <summary>Parser settings chosen from the rendered prompt, so that K2.5's pre-opened think block is read as reasoning.</summary>
public class PromptAwareParsingTests
{
    private static readonly JsonArray Question = JsonNode.Parse("""[{"role": "user", "content": "2+2?"}]""")!.AsArray();

    private static string K25Prompt(bool? thinking) => ChatTemplate.BuiltInKimiK25().Render(Question,
        extraVariables: thinking is bool on ? new Dictionary<string, JsonNode?> { ["thinking"] = on } : null);

    [Fact]
    public void A_K25_thinking_prompt_makes_the_output_start_in_reasoning()
    {
        var options = KimiOutputParserOptions.ForPrompt(K25Prompt(thinking: null));
        Assert.Equal(ReasoningMode.StartsInReasoning, options.Reasoning);
        Assert.Equal<ParserEvent>([new ReasoningDelta("Add them."), new ContentDelta("4"), new End(FinishReason.Stop)],
            Merge(ParseWhole("Add them.</think>4<|im_end|>", options)));
    }

    [Fact]
    public void A_K25_instant_prompt_and_a_K2_Thinking_prompt_leave_reasoning_to_an_explicit_tag()
    {
        var instant = KimiOutputParserOptions.ForPrompt(K25Prompt(thinking: false));
        Assert.Equal(ReasoningMode.ExplicitThinkTag, instant.Reasoning);
        Assert.Equal<ParserEvent>([new ContentDelta("4"), new End(FinishReason.Stop)], Merge(ParseWhole("4<|im_end|>", instant)));

        string k2Thinking = ChatTemplate.BuiltInKimiK2Thinking().Render(Question);
        Assert.Equal(ReasoningMode.ExplicitThinkTag, KimiOutputParserOptions.ForPrompt(k2Thinking).Reasoning);
        Assert.Throws<ArgumentNullException>(() => KimiOutputParserOptions.ForPrompt(null!));
    }
}
