using KimiSharp.Tokens.Parsing;
using static KimiSharp.Tokens.Tests.Parsing.ParserTestHelpers;

namespace KimiSharp.Tokens.Tests.Parsing;

public class KimiOutputParserTests
{
    private static readonly KimiOutputParserOptions StartsInReasoning = new() { Reasoning = ReasoningMode.StartsInReasoning };
    private static readonly KimiOutputParserOptions NoReasoning = new() { Reasoning = ReasoningMode.None };

    [Fact]
    public void Reasoning_in_explicit_think_tags_then_content()
    {
        var events = Merge(ParseWhole("<think>Let me think.</think>The answer is 4.<|im_end|>"));
        Assert.Equal<ParserEvent>(
            [new ReasoningDelta("Let me think."), new ContentDelta("The answer is 4."), new End(FinishReason.Stop)],
            events);
    }

    [Fact]
    public void Without_a_leading_think_tag_everything_is_content_in_explicit_mode()
    {
        var events = Merge(ParseWhole("Just an answer </think> with a stray tag.<|im_end|>"));
        Assert.Equal<ParserEvent>([new ContentDelta("Just an answer </think> with a stray tag."), new End(FinishReason.Stop)], events);
    }

    [Fact]
    public void Starts_in_reasoning_mode_handles_implicit_thinking()
    {
        var events = Merge(ParseWhole("thinking without an opening tag</think>answer<|im_end|>", StartsInReasoning));
        Assert.Equal<ParserEvent>(
            [new ReasoningDelta("thinking without an opening tag"), new ContentDelta("answer"), new End(FinishReason.Stop)],
            events);
    }

    [Fact]
    public void Starts_in_reasoning_mode_consumes_a_leading_think_tag()
    {
        var events = Merge(ParseWhole("<think>r</think>c", StartsInReasoning));
        Assert.Equal<ParserEvent>([new ReasoningDelta("r"), new ContentDelta("c"), new End(FinishReason.Stop)], events);
    }

    [Fact]
    public void No_reasoning_mode_treats_think_tags_as_content()
    {
        var events = Merge(ParseWhole("<think>x</think>y<|im_end|>", NoReasoning));
        Assert.Equal<ParserEvent>([new ContentDelta("<think>x</think>y"), new End(FinishReason.Stop)], events);
    }

    [Fact]
    public void Empty_reasoning_is_reported_as_empty_not_absent()
    {
        var parsed = KimiOutputParser.Parse("<think></think>Hi<|im_end|>");
        Assert.Equal("", parsed.Reasoning);
        Assert.Equal("Hi", parsed.Content);
        Assert.Null(KimiOutputParser.Parse("Hi<|im_end|>").Reasoning);
    }

    [Fact]
    public void Tool_section_ends_reasoning_that_lacks_a_closing_tag()
    {
        const string text = "<think>I need the weather<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\":\"Beijing\"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>";
        var events = Merge(ParseWhole(text));
        Assert.Equal<ParserEvent>(
        [
            new ReasoningDelta("I need the weather"),
            new ToolCallStart(0, "functions.get_weather:0", "get_weather"),
            new ToolCallArgumentsDelta(0, "{\"city\":\"Beijing\"}"),
            new ToolCallEnd(0, "{\"city\":\"Beijing\"}", null),
            new End(FinishReason.ToolCalls),
        ], events);
    }

    [Fact]
    public void Several_calls_in_one_section()
    {
        const string text =
            "<think>plan</think>Checking both.<|tool_calls_section_begin|>" +
            "<|tool_call_begin|>functions.get_weather:3<|tool_call_argument_begin|>{\"city\": \"北京\"}<|tool_call_end|>" +
            "<|tool_call_begin|> functions.search:4 <|tool_call_argument_begin|>{\"q\": \"天气\", \"n\": 2}<|tool_call_end|>" +
            "<|tool_call_begin|>functions.noop:5<|tool_call_argument_begin|><|tool_call_end|>" +
            "<|tool_calls_section_end|><|im_end|>";
        var parsed = KimiOutputParser.Parse(text);
        Assert.Equal("plan", parsed.Reasoning);
        Assert.Equal("Checking both.", parsed.Content);
        Assert.Equal(FinishReason.ToolCalls, parsed.FinishReason);
        Assert.Equal(
        [
            new ParsedToolCall(0, "functions.get_weather:3", "get_weather", "{\"city\": \"北京\"}", null),
            new ParsedToolCall(1, "functions.search:4", "search", "{\"q\": \"天气\", \"n\": 2}", null),
            new ParsedToolCall(2, "functions.noop:5", "noop", "{}", null), // empty arguments become {}
        ], parsed.ToolCalls);
    }

    [Fact]
    public void Events_for_a_call_come_in_order_start_deltas_end()
    {
        var events = ParseChunks(["<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\":", "1}", "<|tool_call_end|><|tool_calls_section_end|>"]);
        Assert.Equal<ParserEvent>(
        [
            new ToolCallStart(0, "functions.f:0", "f"),
            new ToolCallArgumentsDelta(0, "{\"a\":"),
            new ToolCallArgumentsDelta(0, "1}"),
            new ToolCallEnd(0, "{\"a\":1}", null),
            new End(FinishReason.ToolCalls),
        ], events);
    }

    [Fact]
    public void Section_that_never_closes_is_closed_at_the_end_of_the_stream()
    {
        const string text = "<think>r</think><|tool_calls_section_begin|><|tool_call_begin|>functions.write_file:0<|tool_call_argument_begin|>{\"path\": \"a.txt\", \"content\": \"hel";
        var events = Merge(ParseWhole(text));
        Assert.Equal(5, events.Count);
        Assert.Equal(new ToolCallStart(0, "functions.write_file:0", "write_file"), events[1]);
        Assert.Equal(new ToolCallArgumentsDelta(0, "{\"path\": \"a.txt\", \"content\": \"hel"), events[2]);
        var end = Assert.IsType<ToolCallEnd>(events[3]);
        Assert.Equal("{\"path\": \"a.txt\", \"content\": \"hel", end.ArgumentsJson);
        Assert.Contains("ended inside the tool call", end.Error);
        Assert.Contains("not valid JSON", end.Error);
        Assert.Equal(new End(FinishReason.Length), events[4]);
    }

    [Fact]
    public void Call_cut_off_after_its_id_is_closed_and_marked()
    {
        var parsed = KimiOutputParser.Parse("<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0");
        var call = Assert.Single(parsed.ToolCalls);
        Assert.Equal("f", call.Name);
        Assert.Contains("no <|tool_call_argument_begin|>", call.Error);
        Assert.Equal(FinishReason.Length, parsed.FinishReason);
    }

    [Fact]
    public void Complete_section_without_im_end_finishes_with_tool_calls()
    {
        var parsed = KimiOutputParser.Parse("<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>");
        Assert.Equal(FinishReason.ToolCalls, parsed.FinishReason);
        var parser = new KimiOutputParser();
        parser.Feed("partial answer");
        Assert.Equal(new End(FinishReason.Length), parser.Finish(FinishReason.Length).Last());
    }

    [Fact]
    public void Invalid_json_arguments_are_flagged_and_parsing_continues()
    {
        const string text = "<|tool_calls_section_begin|>" +
            "<|tool_call_begin|>functions.bad:0<|tool_call_argument_begin|>{\"a\": tru<|tool_call_end|>" +
            "<|tool_call_begin|>functions.list:1<|tool_call_argument_begin|>[1, 2]<|tool_call_end|>" +
            "<|tool_call_begin|>functions.good:2<|tool_call_argument_begin|>{\"a\": true}<|tool_call_end|>" +
            "<|tool_calls_section_end|>Done.<|im_end|>";
        var parsed = KimiOutputParser.Parse(text);
        Assert.Equal(3, parsed.ToolCalls.Count);
        Assert.Contains("not valid JSON", parsed.ToolCalls[0].Error);
        Assert.Equal("{\"a\": tru", parsed.ToolCalls[0].Arguments);
        Assert.Contains("not an object", parsed.ToolCalls[1].Error);
        Assert.Null(parsed.ToolCalls[2].Error);
        Assert.Equal("Done.", parsed.Content);
    }

    [Fact]
    public void Marker_split_across_chunks_is_held_back_and_nothing_more()
    {
        var parser = new KimiOutputParser();
        Assert.Equal<ParserEvent>([new ContentDelta("Hello ")], parser.Feed("Hello <|im_"));
        Assert.Equal<ParserEvent>([new End(FinishReason.Stop)], parser.Feed("end|>"));

        parser = new KimiOutputParser();
        Assert.Equal<ParserEvent>([new ContentDelta("a <b> c")], parser.Feed("a <b> c")); // '<b' cannot start a marker
        Assert.Equal<ParserEvent>([new ContentDelta("x")], parser.Feed("x<"));
        Assert.Equal<ParserEvent>([new ContentDelta("<=y")], parser.Feed("=y"));
        Assert.Equal<ParserEvent>([new ContentDelta("z</thi")], parser.Feed("z</thi")); // </think> means nothing in content
        Assert.Equal<ParserEvent>([new ContentDelta("<|"), new End(FinishReason.Stop)], ParseRest(parser, "<|"));
    }

    private static List<ParserEvent> ParseRest(KimiOutputParser parser, string chunk)
    {
        var events = new List<ParserEvent>(parser.Feed(chunk));
        Assert.Empty(events); // "<|" could start any <|...|> marker: held back
        events.AddRange(parser.Finish());
        return events;
    }

    [Fact]
    public void Leading_think_tag_split_across_chunks()
    {
        var events = Merge(ParseChunks(["<", "th", "ink", ">", "reason", "</", "think>", "answer"]));
        Assert.Equal<ParserEvent>([new ReasoningDelta("reason"), new ContentDelta("answer"), new End(FinishReason.Stop)], events);
        // A prefix of <think> that turns out to be something else is content.
        events = Merge(ParseChunks(["<th", "ing>"]));
        Assert.Equal<ParserEvent>([new ContentDelta("<thing>"), new End(FinishReason.Stop)], events);
    }

    [Fact]
    public void Held_back_prefix_is_flushed_as_text_at_the_end()
    {
        var events = Merge(ParseChunks(["answer <|tool_calls_sec"]));
        Assert.Equal<ParserEvent>([new ContentDelta("answer <|tool_calls_sec"), new End(FinishReason.Stop)], events);
    }

    [Fact]
    public void Look_alike_markers_inside_arguments_are_text()
    {
        const string args = "{\"note\": \"<|tool_call_end is not the end\", \"html\": \"</think><b>\", \"s\": \"<|tool_call_argument_begin\"}";
        const string text = "<think>r</think><|tool_calls_section_begin|><|tool_call_begin|>functions.save:0<|tool_call_argument_begin|>" + args + "<|tool_call_end|><|tool_calls_section_end|><|im_end|>";
        foreach (var events in new[] { ParseWhole(text), ParseChunks(Chars(text)) })
        {
            var parsed = ParsedOutput.FromEvents(events);
            var call = Assert.Single(parsed.ToolCalls);
            Assert.Equal(args, call.Arguments);
            Assert.Null(call.Error);
            Assert.Equal("r", parsed.Reasoning);
            Assert.Equal("", parsed.Content);
        }
    }

    [Fact]
    public void Think_end_inside_content_after_reasoning_is_text()
    {
        var parsed = KimiOutputParser.Parse("<think>a</think>Use </think> to close reasoning.<|im_end|>");
        Assert.Equal("a", parsed.Reasoning);
        Assert.Equal("Use </think> to close reasoning.", parsed.Content);
    }

    [Theory]
    [InlineData("functions.get_weather:0", "get_weather")]
    [InlineData("functions.a.b.c:12", "a.b.c")]
    [InlineData("functions.ns:tool:3", "ns:tool")]
    [InlineData("search:0", "search")]
    [InlineData("functions.bare", "bare")]
    [InlineData("plain", "plain")]
    public void Name_is_the_id_without_prefix_and_index(string id, string name)
    {
        Assert.Equal(name, KimiOutputParser.NameFromId(id));
    }

    [Fact]
    public void Id_whitespace_and_newlines_are_trimmed()
    {
        var parsed = KimiOutputParser.Parse("<|tool_calls_section_begin|><|tool_call_begin|>\n functions.f:7 \n<|tool_call_argument_begin|> {\"x\":1} <|tool_call_end|><|tool_calls_section_end|>");
        var call = Assert.Single(parsed.ToolCalls);
        Assert.Equal("functions.f:7", call.Id);
        Assert.Equal("f", call.Name);
        Assert.Equal(" {\"x\":1} ", call.Arguments);
        Assert.Null(call.Error);
    }

    [Fact]
    public void Text_after_im_end_is_ignored()
    {
        var parser = new KimiOutputParser();
        var events = parser.Feed("done<|im_end|>garbage");
        Assert.Equal<ParserEvent>([new ContentDelta("done"), new End(FinishReason.Stop)], events);
        Assert.Empty(parser.Feed("more"));
        Assert.Empty(parser.Finish());
        Assert.True(parser.IsEnded);
    }

    [Fact]
    public void Im_end_inside_a_call_closes_it_with_an_error()
    {
        var parsed = KimiOutputParser.Parse("<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|im_end|>");
        var call = Assert.Single(parsed.ToolCalls);
        Assert.Contains("turn ended before <|tool_call_end|>", call.Error);
        Assert.Equal("{}", call.Arguments);
        Assert.Equal(FinishReason.ToolCalls, parsed.FinishReason);
    }

    [Fact]
    public void Missing_call_end_before_the_next_call()
    {
        var parsed = KimiOutputParser.Parse("<|tool_calls_section_begin|><|tool_call_begin|>functions.a:0<|tool_call_argument_begin|>{\"x\":1}<|tool_call_begin|>functions.b:1<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>");
        Assert.Equal(2, parsed.ToolCalls.Count);
        Assert.Equal("{\"x\":1}", parsed.ToolCalls[0].Arguments);
        Assert.Contains("before <|tool_call_end|>", parsed.ToolCalls[0].Error);
        Assert.Null(parsed.ToolCalls[1].Error);
    }

    [Fact]
    public void Content_before_and_after_the_section_is_kept()
    {
        var parsed = KimiOutputParser.Parse("Let me check.<|tool_calls_section_begin|>\n<|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|>\n<|tool_calls_section_end|> after<|im_end|>");
        Assert.Equal("Let me check. after", parsed.Content);
        Assert.Single(parsed.ToolCalls);
    }

    [Fact]
    public void Misspelled_section_markers_and_bare_calls_are_accepted()
    {
        var parsed = KimiOutputParser.Parse("a<|tool_call_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_call_section_end|>b<|im_end|>");
        Assert.Equal("ab", parsed.Content);
        Assert.Single(parsed.ToolCalls);

        // A call emitted inside unterminated reasoning, without a section (K2-Thinking does this).
        parsed = KimiOutputParser.Parse("<think>hmm<|tool_call_begin|>functions.g:1<|tool_call_argument_begin|>{\"k\":\"v\"}<|tool_call_end|><|im_end|>");
        Assert.Equal("hmm", parsed.Reasoning);
        Assert.Equal("g", Assert.Single(parsed.ToolCalls).Name);
    }

    [Fact]
    public void Stop_reason_given_to_finish_becomes_tool_calls_when_tools_were_called()
    {
        var parser = new KimiOutputParser();
        parser.Feed("<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|>");
        Assert.Equal(new End(FinishReason.ToolCalls), parser.Finish(FinishReason.Stop).Last());
    }

    [Fact]
    public void Surrogate_pairs_are_never_split_between_deltas()
    {
        var parser = new KimiOutputParser();
        string emoji = "😀";
        var first = parser.Feed("a" + emoji[0]);
        Assert.Equal<ParserEvent>([new ContentDelta("a")], first);
        Assert.Equal<ParserEvent>([new ContentDelta(emoji)], parser.Feed(emoji[1].ToString()));
    }

    [Fact]
    public void Span_overload_appends_to_a_caller_owned_list()
    {
        var parser = new KimiOutputParser();
        var sink = new List<ParserEvent>();
        parser.Feed("<think>x".AsSpan(), sink);
        parser.Feed("</think>y".AsSpan(), sink);
        parser.Finish(sink);
        Assert.Equal<ParserEvent>([new ReasoningDelta("x"), new ContentDelta("y"), new End(FinishReason.Stop)], sink);
    }
}
