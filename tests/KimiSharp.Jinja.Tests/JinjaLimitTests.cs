using System.Diagnostics;

namespace KimiSharp.Jinja.Tests;

/// <summary>Hostile templates fail fast with <see cref="TemplateLimitExceededException"/> naming the limit.</summary>
public sealed class JinjaLimitTests
{
    private static string Render(string source, JinjaLimits? limits = null) =>
        JinjaTemplate.Parse(source, new JinjaOptions { Limits = limits ?? JinjaLimits.Default }).Render(new Dictionary<string, JinjaValue>());

    private static TemplateLimitExceededException AssertLimit(string limit, string source, JinjaLimits? limits = null, double maxSeconds = 3)
    {
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<TemplateLimitExceededException>(() => Render(source, limits));
        Assert.True(clock.Elapsed.TotalSeconds < maxSeconds, $"took {clock.Elapsed} to hit {limit}");
        Assert.Equal(limit, e.Limit);
        Assert.Equal(TemplateErrorKind.LimitExceeded, e.Kind);
        Assert.Contains("JinjaLimits." + limit, e.Message);
        Assert.IsAssignableFrom<TemplateException>(e); // callers that handle template errors handle this one too
        return e;
    }

    [Fact]
    public void Doubling_a_string_forty_times_hits_the_string_limit()
    {
        var e = AssertLimit(nameof(JinjaLimits.MaxStringLength),
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}");
        Assert.Equal(1, e.Line);
        AssertLimit(nameof(JinjaLimits.MaxStringLength),
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}");
    }

    [Fact]
    public void Repetition_is_refused_before_it_allocates()
    {
        AssertLimit(nameof(JinjaLimits.MaxStringLength), "{{ 'x' * 1000000000 }}", maxSeconds: 1);
        AssertLimit(nameof(JinjaLimits.MaxStringLength), "{{ 'abc' * 5000000 }}", maxSeconds: 1);
        AssertLimit(nameof(JinjaLimits.MaxCollectionLength), "{{ ([1, 2] * 5000000) | length }}", maxSeconds: 1);
        AssertLimit(nameof(JinjaLimits.MaxStringLength), "{{ ('x' * 4000000).replace('x', 'yy') | length }}", maxSeconds: 2);
        AssertLimit(nameof(JinjaLimits.MaxStringLength), "{{ 'x'.center(100000000) }}", maxSeconds: 1);
        AssertLimit(nameof(JinjaLimits.MaxStringLength), "{{ '{:>100000000}'.format('x') }}", maxSeconds: 1);
    }

    [Fact]
    public void Nested_loops_over_large_ranges_hit_the_iteration_limit()
    {
        // 10^10 iterations: with the default limits the render stops after 10^6 (or at the 5 s clock on a
        // crowded machine); without a clock it is the iteration limit that stops it.
        const string nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        var clock = Stopwatch.StartNew();
        Assert.Throws<TemplateLimitExceededException>(() => Render(nested));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        var noClock = new JinjaLimits { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        AssertLimit(nameof(JinjaLimits.MaxLoopIterations), nested, noClock, maxSeconds: 30);
        // Counted over the whole render, not per loop: 3 × 400 000 iterations.
        AssertLimit(nameof(JinjaLimits.MaxLoopIterations),
            "{% for i in range(3) %}{% for j in range(100000) %}{% for k in range(4) %}{% endfor %}{% endfor %}{% endfor %}", noClock, maxSeconds: 30);
    }

    [Fact]
    public void Output_is_limited()
    {
        AssertLimit(nameof(JinjaLimits.MaxOutputLength), "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}");
        AssertLimit(nameof(JinjaLimits.MaxOutputLength), "{% for i in range(100000) %}0123456789{% endfor %}",
            new JinjaLimits { MaxOutputLength = 100_000 });
        // Text rendered into a variable counts too.
        AssertLimit(nameof(JinjaLimits.MaxOutputLength), "{% set big %}{% for i in range(50) %}abc{% endfor %}{% endset %}",
            new JinjaLimits { MaxOutputLength = 100 });
    }

    [Fact]
    public void Exponential_macro_recursion_hits_the_time_limit()
    {
        // No loop at all, tiny output: only the clock stops 2^40 calls.
        AssertLimit(nameof(JinjaLimits.Timeout),
            "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
            new JinjaLimits { Timeout = TimeSpan.FromMilliseconds(300) });
    }

    [Fact]
    public void A_cancelled_render_stops()
    {
        var template = JinjaTemplate.Parse("{% for i in range(100000) %}{{ i }}{% endfor %}");
        Assert.ThrowsAny<OperationCanceledException>(() => template.Render(new Dictionary<string, JinjaValue>(), new CancellationToken(canceled: true)));
    }

    [Fact]
    public void Limits_are_configurable_and_the_defaults_fit_real_templates()
    {
        string source = "{% for i in range(3) %}{% for j in range(100000) %}{{ j % 10 }}{% endfor %}{% endfor %}";
        Assert.Equal(300_000, Render(source).Length);
        AssertLimit(nameof(JinjaLimits.MaxLoopIterations), source, new JinjaLimits { MaxLoopIterations = 1000 });
        Assert.Equal(5_000_000, Render("{{ 'x' * 5000000 }}", JinjaLimits.None).Length);
        Assert.Equal(5_000_000, Render("{{ 'x' * 5000000 }}", new JinjaLimits { MaxStringLength = 5_000_000, MaxOutputLength = 5_000_000 }).Length);
    }

    [Fact]
    public void Integers_grow_past_64_bits_but_stop_at_MaxIntBits_before_computing()
    {
        Assert.Equal("18446744073709551616", Render("{{ 2 ** 64 }}"));
        Assert.Equal(4215, Render("{{ 2 ** 13999 }}").Length);
        foreach (string source in new[]
        {
            "{{ 2 ** 100000000000 }}",
            "{{ 2 ** 14000 }}",
            "{% set ns = namespace(x=3) %}{% for i in range(100) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
        })
        {
            var clock = Stopwatch.StartNew();
            var e = Assert.Throws<TemplateException>(() => Render(source));
            Assert.True(clock.Elapsed.TotalSeconds < 3, $"took {clock.Elapsed}");
            Assert.Equal("OverflowError", e.PythonType);
            Assert.Contains("14000 bits", e.Description);
        }
        Assert.Contains("integer literal too large", Assert.Throws<TemplateException>(() => Render("{{ " + new string('9', 4300) + " }}")).Description);
        Assert.Equal("1 -1 0", Render("{{ 1 ** 99999999999999999999 }} {{ (-1) ** 99999999999999999999 }} {{ 0 ** 99999999999999999999 }}"));
    }
}
