using System.Text;
using System.Text.Json;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Tokens.Tests.Tokenization;
using KimiSharp.Tokens.Tokenization;
using static KimiSharp.Tokens.Tests.Parsing.ParserTestHelpers;

namespace KimiSharp.Tokens.Tests.Parsing;

public class ParserFuzzAndRoundTripTests
{
    private static readonly string[] Outputs =
    [
        "<think>Let me think about 天气 in 北京 😀.</think>It is sunny ☀️ today.<|im_end|>",
        "<think>需要调用工具。</think>好的，我来查一下。<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"北京\", \"unit\": \"c\"}<|tool_call_end|><|tool_call_begin|>functions.search:1<|tool_call_argument_begin|>{\"q\": \"</think> <|tool_call_end <b>\"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>",
        "<think>no close tag, straight to tools<|tool_calls_section_begin|><|tool_call_begin|>functions.run:2<|tool_call_argument_begin|>{\"cmd\": \"ls -la | grep '<|x'\"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>",
        "Plain answer with <tags>, <|fake|> markers, a < b, and 日本語のテキスト 👨‍👩‍👧.<|im_end|>",
        "<think></think><|tool_calls_section_begin|><|tool_call_begin|>functions.broken:3<|tool_call_argument_begin|>{\"a\": [1, 2<|tool_call_end|><|tool_call_begin|>functions.ok:4<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>trailing<|im_end|>",
        "<think>cut off mid call</think><|tool_calls_section_begin|><|tool_call_begin|>functions.write:5<|tool_call_argument_begin|>{\"text\": \"𠀀𠀁 long ",
        "<th",
        "<think>unfinished reasoning <|im_e",
    ];

    [Fact]
    public void Random_chunkings_give_the_same_events_as_one_chunk()
    {
        var rng = new Random(20251123);
        foreach (var options in new KimiOutputParserOptions[] { new(), new() { Reasoning = ReasoningMode.StartsInReasoning }, new() { Reasoning = ReasoningMode.None } })
        {
            foreach (string output in Outputs)
            {
                var whole = Merge(ParseWhole(output, options));
                for (int iteration = 0; iteration < 500; iteration++)
                {
                    var chunks = RandomChunks(output, rng);
                    var events = Merge(ParseChunks(chunks, options));
                    if (!whole.SequenceEqual(events))
                    {
                        Assert.Fail($"Chunking [{string.Join("|", chunks)}] ({options.Reasoning}) gave\n{Describe(events)}instead of\n{Describe(whole)}");
                    }
                }
            }
        }
    }

    [Fact]
    public void Random_token_chunkings_through_the_id_adapter_match_text_parsing()
    {
        var tok = TestVocabulary.Tokenizer;
        var rng = new Random(7);
        foreach (string output in Outputs)
        {
            var expected = Merge(ParseWhole(output));
            var ids = tok.Encode(output, allowSpecial: true);
            for (int iteration = 0; iteration < 20; iteration++)
            {
                // Re-split some tokens into their single bytes so multi-byte characters straddle tokens.
                var stream = new List<int>();
                foreach (int id in ids)
                {
                    if (!tok.IsSpecial(id) && rng.Next(2) == 0)
                    {
                        foreach (byte b in tok.GetTokenBytes(id))
                        {
                            stream.Add(b);
                        }
                    }
                    else
                    {
                        stream.Add(id);
                    }
                }

                var adapter = new KimiTokenStreamParser(tok);
                var events = new List<ParserEvent>();
                foreach (int id in stream)
                {
                    var produced = adapter.Feed(id);
                    Assert.DoesNotContain(produced, e => e is ContentDelta { Text: var t } && t.Contains('\uFFFD'));
                    events.AddRange(produced);
                }

                events.AddRange(adapter.Finish());
                Assert.Equal(expected, Merge(events));
            }
        }
    }

    [Fact]
    public void Eos_id_ends_the_output_in_the_adapter()
    {
        var tok = TestVocabulary.Tokenizer;
        var adapter = new KimiTokenStreamParser(tok);
        var events = new List<ParserEvent>();
        foreach (int id in tok.Encode("<think>r</think>answer", allowSpecial: true))
        {
            events.AddRange(adapter.Feed(id));
        }

        events.AddRange(adapter.Feed(tok.EosId!.Value));
        events.AddRange(adapter.Feed('x'));
        Assert.Equal<ParserEvent>([new ReasoningDelta("r"), new ContentDelta("answer"), new End(FinishReason.Stop)], Merge(events));
        Assert.True(adapter.Parser.IsEnded);
    }

    /// <summary>An assistant message in the form the chat template consumes.</summary>
    private sealed record ToolCall(string Name, object Arguments);

    /// <summary>
    /// Renders an assistant turn exactly as Kimi-K2-Thinking.jinja renders a message of the current turn (the
    /// suffix after the last plain assistant answer): header, &lt;think&gt;reasoning&lt;/think&gt;, content, then the
    /// tool section with ids 'functions.' + name + ':' + a counter running over the conversation, arguments as
    /// given when a string and otherwise tojson, and &lt;|im_end|&gt;. Whitespace-trimming tags leave no separators.
    /// The model generates everything after the generation prompt, so that part is what the parser sees.
    /// </summary>
    private static (string Turn, string Generated) RenderAssistantTurn(string reasoning, string content, IReadOnlyList<ToolCall> calls, ref int counter)
    {
        var generated = new StringBuilder();
        generated.Append("<think>").Append(reasoning).Append("</think>").Append(content);
        if (calls.Count > 0)
        {
            generated.Append(KimiSpecialTokens.ToolCallsSectionBegin);
            foreach (var call in calls)
            {
                string id = "functions." + call.Name + ":" + counter++;
                string args = call.Arguments as string ?? JsonSerializer.Serialize(call.Arguments, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
                generated.Append(KimiSpecialTokens.ToolCallBegin).Append(id).Append(KimiSpecialTokens.ToolCallArgumentBegin).Append(args).Append(KimiSpecialTokens.ToolCallEnd);
            }

            generated.Append(KimiSpecialTokens.ToolCallsSectionEnd);
        }

        generated.Append(KimiSpecialTokens.ImEnd);
        const string header = "<|im_assistant|>assistant<|im_middle|>";
        return (header + generated, generated.ToString());
    }

    public static TheoryData<string, string, string[], string[]> Turns => new()
    {
        { "The user wants weather; call the tool.", "", ["get_weather"], ["{\"city\":\"Beijing\"}"] },
        { "两个工具都需要。", "我先查天气，再搜索新闻。", ["get_weather", "web.search"], ["{\"city\":\"北京\",\"unit\":\"celsius\"}", "{\"query\":\"</think> is a tag\",\"top_k\":3}"] },
        { "", "Hello! 😀 No tools needed.", [], [] },
        { "Thinking with <angle> brackets and <|pseudo|> markers.", "Done.", [], [] },
        { "edge", "", ["noop"], ["{}"] },
    };

    [Theory]
    [MemberData(nameof(Turns))]
    public void Template_rendered_turn_parses_back(string reasoning, string content, string[] names, string[] arguments)
    {
        int counter = 7; // ids continue the conversation's global counter
        var calls = names.Zip(arguments, (n, a) => new ToolCall(n, a)).ToList();
        var (turn, generated) = RenderAssistantTurn(reasoning, content, calls, ref counter);
        Assert.StartsWith("<|im_assistant|>assistant<|im_middle|><think>", turn);

        foreach (var parsed in new[]
                 {
                     KimiOutputParser.Parse(generated),
                     KimiOutputParser.Parse(generated, new KimiOutputParserOptions { Reasoning = ReasoningMode.StartsInReasoning }),
                     ParsedOutput.FromEvents(ParseChunks(Chars(generated)), sawReasoning: true),
                 })
        {
            Assert.Equal(reasoning, parsed.Reasoning);
            Assert.Equal(content, parsed.Content);
            Assert.Equal(calls.Count > 0 ? FinishReason.ToolCalls : FinishReason.Stop, parsed.FinishReason);
            Assert.Equal(calls.Count, parsed.ToolCalls.Count);
            for (int i = 0; i < calls.Count; i++)
            {
                var call = parsed.ToolCalls[i];
                Assert.Equal(i, call.Index);
                Assert.Equal($"functions.{names[i]}:{7 + i}", call.Id);
                Assert.Equal(names[i], call.Name);
                Assert.Equal(arguments[i], call.Arguments);
                Assert.Null(call.Error);
            }
        }
    }

    [Fact]
    public void Template_rendered_turn_with_object_arguments_parses_back_through_token_ids()
    {
        int counter = 0;
        var calls = new List<ToolCall> { new("get_weather", new Dictionary<string, object> { ["city"] = "東京", ["days"] = 3 }) };
        var (_, generated) = RenderAssistantTurn("need weather", "", calls, ref counter);
        var tok = TestVocabulary.Tokenizer;
        var adapter = new KimiTokenStreamParser(tok);
        var events = new List<ParserEvent>();
        foreach (int id in tok.Encode(generated, allowSpecial: true))
        {
            events.AddRange(adapter.Feed(id));
        }

        events.AddRange(adapter.Finish());
        var parsed = ParsedOutput.FromEvents(events);
        Assert.Equal("need weather", parsed.Reasoning);
        var call = Assert.Single(parsed.ToolCalls);
        Assert.Equal("functions.get_weather:0", call.Id);
        Assert.Equal("{\"city\":\"東京\",\"days\":3}", call.Arguments);
        Assert.Null(call.Error);
    }

    private static List<string> RandomChunks(string text, Random rng)
    {
        var chunks = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            // Mostly small chunks (token-like), sometimes empty or large.
            int len = rng.Next(10) switch
            {
                0 => 0,
                1 => rng.Next(10, 60),
                _ => rng.Next(1, 6),
            };
            len = Math.Min(len, text.Length - i);
            chunks.Add(text.Substring(i, len));
            i += len;
        }

        return chunks;
    }
}
