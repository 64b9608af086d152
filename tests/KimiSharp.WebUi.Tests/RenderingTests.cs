using Microsoft.Playwright;

namespace KimiSharp.WebUi.Tests;

/// <summary>The page's Markdown, code and math rendering, run in the browser on hostile and ordinary input.</summary>
[Collection("webui")]
public sealed class RenderingTests(WebUiFixture fixture)
{
    private static async Task<IJSHandle> Render(IPage page, string markdown) => await page.EvaluateHandleAsync("""
        async text => { const { renderMarkdown } = await import('/ui/markdown.js');
          const box = document.createElement('div'); box.append(renderMarkdown(text)); document.body.append(box); return box; }
        """, markdown);

    [BrowserFact]
    public async Task ModelOutput_NeverBecomesMarkupOrScriptLinks()
    {
        var page = await fixture.OpenPage();
        await page.EvaluateAsync("() => { window.pwned = false; }");
        var box = await Render(page, """
            <img src=x onerror="window.pwned = true"> <script>window.pwned = true</script>
            [click](javascript:window.pwned=true) [data](data:text/html,hi) [ok](https://example.com/a?b=1)
            <b>bold?</b> ![pic](http://example.com/p.png) $\href{javascript:x}{y}$
            | a | <i>b</i> |
            |---|---|
            | <svg onload=alert(1)> | `<code>` |
            """);
        await page.WaitForTimeoutAsync(100);
        Assert.False(await page.EvaluateAsync<bool>("() => window.pwned"));
        var result = await box.EvaluateAsync<string[]>("""
            b => [String(b.querySelectorAll('img, script, svg, b, i, iframe').length),
                  [...b.querySelectorAll('a')].map(a => a.getAttribute('href')).join(' '),
                  [...b.querySelectorAll('a')].map(a => a.rel).join(' '),
                  b.textContent]
            """);
        Assert.Equal("0", result[0]);
        Assert.Equal("https://example.com/a?b=1 http://example.com/p.png", result[1]);
        Assert.Contains("noopener", result[2]);
        Assert.Contains("<img src=x onerror=\"window.pwned = true\">", result[3]); // shown as text
        Assert.Contains("<svg onload=alert(1)>", result[3]);
        Assert.Contains("click (javascript:window.pwned=true)", result[3]);
    }

    [BrowserFact]
    public async Task Markdown_TablesListsCodeAndMath()
    {
        var page = await fixture.OpenPage();
        var box = await Render(page, """
            # Title
            Some **bold**, *italic*, ~~gone~~ and `code` with snake_case_name.

            | City | Population |
            |:-----|-----------:|
            | Belmark | 5,086 |
            | Ostdor | 6,252 |

            1. first
            2. second
               - nested *item*
            - [x] done

            ```python
            def f(x):  # square
                return x ** 2
            ```

            Inline $\frac{a}{b} + x^2$ and display:
            $$\sum_{i=1}^{n} i = \frac{n(n+1)}{2}$$
            """);
        var facts = await box.EvaluateAsync<string[]>("""
            b => [b.querySelector('h1')?.textContent, b.querySelector('strong')?.textContent, b.querySelector('em')?.textContent,
                  b.querySelector('del')?.textContent, String(b.querySelectorAll('table tbody tr').length),
                  b.querySelector('td:nth-child(2)')?.style.textAlign, String(b.querySelectorAll('ol > li').length),
                  b.querySelector('ol li ul li em')?.textContent, b.querySelector('.codeblock .code-head span')?.textContent,
                  [...b.querySelectorAll('.codeblock .hl-kw')].map(s => s.textContent).join(','),
                  b.querySelector('.codeblock .hl-com')?.textContent, String(!!b.querySelector('.codeblock button.copy')),
                  String(b.querySelectorAll('math').length), String(!!b.querySelector('math mfrac')),
                  String(!!b.querySelector('math[display=block] munderover')), b.querySelector('p')?.textContent]
            """);
        Assert.Equal("Title", facts[0]);
        Assert.Equal("bold", facts[1]);
        Assert.Equal("italic", facts[2]);
        Assert.Equal("gone", facts[3]);
        Assert.Equal("2", facts[4]);
        Assert.Equal("right", facts[5]);
        Assert.Equal("2", facts[6]);
        Assert.Equal("item", facts[7]);
        Assert.Equal("python", facts[8]);
        Assert.Equal("def,return", facts[9]);
        Assert.Equal("# square", facts[10]);
        Assert.Equal("true", facts[11]);
        Assert.Equal("2", facts[12]);
        Assert.Equal("true", facts[13]);
        Assert.Equal("true", facts[14]);
        Assert.Contains("snake_case_name", facts[15]);
        Assert.True(await box.EvaluateAsync<bool>("b => b.querySelector('li.task input[type=checkbox]').checked"));

        // The copy button puts the code (not its highlighting) on the clipboard.
        await page.Context.GrantPermissionsAsync(["clipboard-read", "clipboard-write"]);
        await box.EvaluateAsync("b => b.querySelector('.codeblock button.copy').click()");
        await page.WaitForFunctionAsync("() => document.querySelector('.codeblock button.copy').textContent === 'Copied'");
        Assert.Equal("def f(x):  # square\n    return x ** 2", await page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));
    }
}
