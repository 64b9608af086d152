using System.Diagnostics;
using System.Text.Json.Nodes;
using KimiSharp.Jinja;
using KimiSharp.Tokens.Templates;

namespace KimiSharp.Tokens.Tests.Templates;

/// <summary>The chat-template path (server, CLI) renders under the default <see cref="JinjaLimits"/>.</summary>
public sealed class ChatTemplateLimitTests : IDisposable
{
    private const string Doubling = "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}";

    private readonly string _directory = Directory.CreateTempSubdirectory("kimi-template-limits-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_model_folder_shipping_a_hostile_template_fails_fast_with_the_limit_named()
    {
        File.WriteAllText(Path.Combine(_directory, "chat_template.jinja"), Doubling);
        var template = ChatTemplate.FromModelDirectory(_directory);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<TemplateLimitExceededException>(() =>
            template.Render(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" })));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
        Assert.Equal(nameof(JinjaLimits.MaxStringLength), e.Limit);
        Assert.Same(JinjaLimits.Default, template.Template.Options.Limits);
    }

    [Fact]
    public void Nested_loops_in_a_chat_template_hit_the_iteration_limit()
    {
        var template = new ChatTemplate("{% for m in messages %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endfor %}");
        var e = Assert.Throws<TemplateLimitExceededException>(() => template.Render(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" })));
        Assert.Equal(nameof(JinjaLimits.MaxLoopIterations), e.Limit);
    }
}
