using System.Text.Json.Nodes;
using KimiSharp.Engine;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace KimiSharp.WebUi.Tests;

/// <summary>The chat page driven in headless Chromium against real k2-nano servers.</summary>
[Collection("webui")]
public sealed class ChatPageTests(WebUiFixture fixture)
{
    private const string ToolQuestion = "What is 17.5% of 2,340 plus 99?";

    /// <summary>Types a question, sends it with Enter and waits until the answer has finished streaming.</summary>
    private static async Task Ask(IPage page, string text)
    {
        int before = await page.Locator(".msg.assistant").CountAsync();
        await page.FillAsync("#input", text);
        await page.PressAsync("#input", "Enter");
        await Expect(page.Locator(".msg.assistant")).ToHaveCountAsync(before + 1);
        await WaitIdle(page);
    }

    private static async Task WaitIdle(IPage page)
    {
        await Expect(page.Locator("#send")).ToBeVisibleAsync();
        await Expect(page.Locator("body.streaming")).ToHaveCountAsync(0);
    }

    private static async Task SetTools(IPage page, bool on)
    {
        if (await page.IsCheckedAsync("#tools") != on) await page.ClickAsync("#tools");
    }

    private static async Task SaveSettings(IPage page, Func<Task> edit)
    {
        await page.ClickAsync("#open-settings");
        await edit();
        await page.ClickAsync("#settings-save");
        await Expect(page.Locator("#settings-dialog")).Not.ToBeVisibleAsync();
    }

    /// <summary>
    /// Records in window.reasoningWasOpen whether a reasoning panel is ever open (it is while reasoning streams). The page
    /// renders once per animation frame, so on a loaded machine a whole reasoning block can arrive within one frame and
    /// never be shown streaming; the page's fetch is therefore paced to hand over one reasoning event per 40 ms.
    /// </summary>
    private static Task WatchReasoningPanels(IPage page) => page.EvaluateAsync("""
        () => { window.reasoningWasOpen = false;
          new MutationObserver(records => {
              if (document.querySelector('details.reasoning[open]')
                  || records.some(r => r.attributeName === 'open' && r.oldValue !== null)) window.reasoningWasOpen = true; })
            .observe(document.getElementById('messages'), { subtree: true, childList: true, attributes: true, attributeOldValue: true, attributeFilter: ['open'] });
          const realFetch = window.fetch;
          window.fetch = async (...args) => {
            const response = await realFetch(...args);
            if (!String(args[0]).includes('/v1/agent/chat') || !response.body) return response;
            const reader = response.body.getReader(), decoder = new TextDecoder(), encoder = new TextEncoder();
            let pending = '';
            const paced = new ReadableStream({ async pull(controller) {
              for (;;) {
                const cut = pending.indexOf('\n\n');
                if (cut >= 0) {
                  const event = pending.slice(0, cut + 2); pending = pending.slice(cut + 2);
                  controller.enqueue(encoder.encode(event));
                  if (event.startsWith('event: reasoning')) await new Promise(r => setTimeout(r, 40));
                  return;
                }
                const { done, value } = await reader.read();
                if (done) { if (pending) controller.enqueue(encoder.encode(pending)); controller.close(); return; }
                pending += decoder.decode(value, { stream: true });
              }
            } });
            return new Response(paced, { status: response.status, statusText: response.statusText, headers: response.headers });
          };
        }
        """);

    [BrowserFact]
    public async Task ToolQuestion_ShowsThinkingThenAToolCardAndTheAnswer()
    {
        var page = await fixture.OpenPage();
        await WatchReasoningPanels(page);
        await Expect(page.Locator("#model-info")).ToContainTextAsync("k2-nano");
        await Expect(page.Locator("#model-info")).ToContainTextAsync("8,192");
        Assert.True(await page.IsCheckedAsync("#tools"), "tools (agent mode) are on by default");
        await Expect(page.Locator("#attach")).ToBeHiddenAsync(); // k2-nano is text-only

        // Shift+Enter is a new line, not a send.
        await page.FillAsync("#input", "first line");
        await page.PressAsync("#input", "Shift+Enter");
        await page.Keyboard.TypeAsync("second line");
        await Expect(page.Locator("#input")).ToHaveValueAsync("first line\nsecond line");
        await Expect(page.Locator(".msg")).ToHaveCountAsync(0);

        await Ask(page, ToolQuestion);

        var answer = page.Locator(".msg.assistant").Last;
        var card = answer.Locator(".tool-card");
        await Expect(card.First.Locator(".tool-name")).ToHaveTextAsync("calculator");
        await Expect(card.First.Locator(".tool-args")).ToContainTextAsync("\"expression\"");
        await Expect(card.First.Locator(".tool-result")).ToHaveTextAsync("508.5");
        await Expect(card.First.Locator(".tool-status")).ToHaveTextAsync("done");
        await Expect(answer.Locator(".markdown").Last).ToContainTextAsync("508.5");

        var reasoning = answer.Locator("details.reasoning").First;
        await Expect(reasoning.Locator("summary")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^Thought for \d+\.\d s$"));
        Assert.False(await reasoning.EvaluateAsync<bool>("d => d.open"), "the reasoning panel collapses once the answer starts");
        Assert.True(await page.EvaluateAsync<bool>("() => window.reasoningWasOpen"), "the reasoning panel was open while it streamed");
        await reasoning.Locator("summary").ClickAsync();
        await Expect(reasoning.Locator(".reasoning-body")).ToContainTextAsync("calculator");

        // Reasoning → tool card → answer, in that order.
        var order = await answer.Locator(".body > *:not(.tail)").EvaluateAllAsync<string[]>("els => els.map(e => e.className)");
        Assert.Equal("reasoning", order[0]);
        Assert.Contains("tool-card", order);
        Assert.True(Array.IndexOf(order, "tool-card") < Array.LastIndexOf(order, "markdown"), string.Join(",", order));

        var stats = await answer.Locator(".stats").InnerTextAsync();
        Assert.Matches(@"\d+ tokens · [\d.]+ tok/s · TTFT \d+ ms · prompt \d+/8192 · \d+ cached · 2 steps", stats);
        await Expect(page.Locator("#conversation-list li")).ToHaveCountAsync(1);
        await Expect(page.Locator("#conversation-list li .open")).ToHaveTextAsync(ToolQuestion);
    }

    [BrowserFact]
    public async Task Escape_StopsAnAnswerMidStream()
    {
        var page = await fixture.OpenPage();
        var cities = string.Join(", ", JsonNode.Parse(File.ReadAllText(Path.Combine(WebUiFixture.ModelDirectory, "knowledge_base.json")))!
            .AsArray().Take(80).Select(c => c!["name"]!.GetValue<string>()));
        await page.FillAsync("#input", $"What is the total population of these 80 cities: {cities}? Save the total in memory as 'total'.");
        await page.PressAsync("#input", "Enter");
        var cards = page.Locator(".msg.assistant .tool-card");
        await Expect(cards.Nth(1)).ToBeVisibleAsync(); // the long task is under way
        await Expect(page.Locator("#stop")).ToBeVisibleAsync();
        await page.Keyboard.PressAsync("Escape");
        await WaitIdle(page);
        await Expect(page.Locator(".msg.assistant .stopped-note")).ToHaveTextAsync("Stopped.");
        int count = await cards.CountAsync();
        Assert.InRange(count, 2, 79); // stopped long before the 80 lookups and the sum
        await page.WaitForTimeoutAsync(700);
        Assert.Equal(count, await cards.CountAsync()); // nothing more arrives
        await Expect(page.Locator(".msg.assistant .error-box")).ToHaveCountAsync(0);
        // The page is usable again at once.
        await page.ClickAsync("#new-chat");
        await Ask(page, ToolQuestion);
        await Expect(page.Locator(".msg.assistant").Last.Locator(".tool-result")).ToHaveTextAsync("508.5");
    }

    [BrowserFact]
    public async Task Regenerate_AddsASecondAnswerAndBothStayReachable()
    {
        var page = await fixture.OpenPage();
        await SetTools(page, false);
        await SaveSettings(page, () => page.FillAsync("#set-temperature", "1.5"));
        await Ask(page, "Tell me about Belmark.");
        var first = await page.Locator(".msg.assistant .body").InnerTextAsync();
        await page.ClickAsync(".msg.assistant .regenerate");
        await WaitIdle(page);
        await Expect(page.Locator(".msg.assistant .branch-index")).ToHaveTextAsync("2/2");
        await Expect(page.Locator(".msg.assistant")).ToHaveCountAsync(1);
        await page.ClickAsync(".msg.assistant .branch-prev");
        await Expect(page.Locator(".msg.assistant .branch-index")).ToHaveTextAsync("1/2");
        Assert.Equal(first, await page.Locator(".msg.assistant .body").InnerTextAsync());
        await page.ClickAsync(".msg.assistant .branch-next");
        await Expect(page.Locator(".msg.assistant .branch-index")).ToHaveTextAsync("2/2");
        await Expect(page.Locator(".msg.assistant .stats")).ToContainTextAsync("tokens");
    }

    [BrowserFact]
    public async Task EditingAQuestion_BranchesAndSwitchingBackRestoresTheOriginal()
    {
        var page = await fixture.OpenPage();
        await Ask(page, ToolQuestion);
        await Ask(page, "What is 6 * 7?");
        await Expect(page.Locator(".msg.user")).ToHaveCountAsync(2);

        // Edit the first question: the conversation continues from the edit, the old turns hide behind ‹ ›.
        await page.Locator(".msg.user").First.Locator(".edit").ClickAsync();
        await page.FillAsync(".edit-input", "What is 12 * 12?");
        await page.PressAsync(".edit-input", "Enter");
        await WaitIdle(page);
        await Expect(page.Locator(".msg.user")).ToHaveCountAsync(1);
        await Expect(page.Locator(".msg.user .bubble")).ToHaveTextAsync("What is 12 * 12?");
        await Expect(page.Locator(".msg.user .branch-index")).ToHaveTextAsync("2/2");
        await Expect(page.Locator(".msg.assistant .tool-result")).ToHaveTextAsync("144");

        await page.ClickAsync(".msg.user .branch-prev");
        await Expect(page.Locator(".msg.user")).ToHaveCountAsync(2);
        await Expect(page.Locator(".msg.user .bubble").First).ToHaveTextAsync(ToolQuestion);
        await Expect(page.Locator(".msg.user .bubble").Nth(1)).ToHaveTextAsync("What is 6 * 7?");
        await Expect(page.Locator(".msg.assistant").First.Locator(".tool-result")).ToHaveTextAsync("508.5");
        await Expect(page.Locator(".msg.user .branch-index").First).ToHaveTextAsync("1/2");
    }

    [BrowserFact]
    public async Task Reload_KeepsHistoryAndSettings()
    {
        var page = await fixture.OpenPage();
        await SaveSettings(page, async () =>
        {
            await page.FillAsync("#set-system", "You are Kimi. Answer briefly.");
            await page.FillAsync("#set-temperature", "0.3");
            await page.FillAsync("#set-max-tokens", "200");
            await page.UncheckAsync("#set-thinking");
        });
        await page.ClickAsync("#theme"); // auto → light
        await WatchReasoningPanels(page);
        await Ask(page, ToolQuestion);
        // With thinking off the reasoning (k2-nano thinks regardless) stays in closed panels.
        await Expect(page.Locator(".msg.assistant details.reasoning").First).ToBeAttachedAsync();
        Assert.False(await page.EvaluateAsync<bool>("() => window.reasoningWasOpen"), "no reasoning panel opens with thinking off");
        var answer = await page.Locator(".msg.assistant .body").InnerTextAsync();

        await page.ReloadAsync();
        await page.WaitForSelectorAsync("body[data-ready='true']");
        await Expect(page.Locator(".msg.user .bubble")).ToHaveTextAsync(ToolQuestion);
        Assert.Equal(answer, await page.Locator(".msg.assistant .body").InnerTextAsync());
        await Expect(page.Locator("#conversation-list li")).ToHaveCountAsync(1);
        Assert.Equal("light", await page.EvaluateAsync<string>("() => document.documentElement.dataset.theme"));
        await page.ClickAsync("#open-settings");
        await Expect(page.Locator("#set-system")).ToHaveValueAsync("You are Kimi. Answer briefly.");
        await Expect(page.Locator("#set-temperature")).ToHaveValueAsync("0.3");
        await Expect(page.Locator("#set-max-tokens")).ToHaveValueAsync("200");
        Assert.False(await page.IsCheckedAsync("#set-thinking"));
    }

    [BrowserFact]
    public async Task ExportThenImport_GivesBackTheSameConversation()
    {
        var page = await fixture.OpenPage();
        await Ask(page, ToolQuestion);
        await Ask(page, "What is 6 * 7?");
        var before = await page.Locator("#messages").InnerTextAsync();

        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#export"));
        string file = Path.Combine(Path.GetTempPath(), $"kimi-export-{Guid.NewGuid():N}.json");
        await download.SaveAsAsync(file);
        try
        {
            var exported = JsonNode.Parse(File.ReadAllText(file))!;
            Assert.Equal("kimisharp-chat", exported["format"]!.GetValue<string>());
            Assert.Single(exported["conversations"]!.AsArray());

            await page.ClickAsync("#conversation-list li .delete");
            await Expect(page.Locator("#conversation-list li")).ToHaveCountAsync(0);
            await Expect(page.Locator(".msg")).ToHaveCountAsync(0);

            await page.SetInputFilesAsync("#import-file", file);
            await Expect(page.Locator("#conversation-list li")).ToHaveCountAsync(1);
            await page.ClickAsync("#conversation-list li .open");
            await Expect(page.Locator(".msg.user")).ToHaveCountAsync(2);
            Assert.Equal(before, await page.Locator("#messages").InnerTextAsync());
            // The imported copy is stored, not just shown.
            await page.ReloadAsync();
            await page.WaitForSelectorAsync("body[data-ready='true']");
            Assert.Equal(before, await page.Locator("#messages").InnerTextAsync());
        }
        finally { File.Delete(file); }
    }

    [BrowserFact]
    public async Task Sidebar_SearchesRenamesAndDeletes()
    {
        var page = await fixture.OpenPage();
        await Ask(page, ToolQuestion);
        await page.ClickAsync("#new-chat");
        await Ask(page, "What is 6 * 7?");
        await Expect(page.Locator("#conversation-list li")).ToHaveCountAsync(2);
        await page.FillAsync("#search", "2,340");
        await Expect(page.Locator("#conversation-list li")).ToHaveCountAsync(1);
        await page.FillAsync("#search", "");
        await page.Locator("#conversation-list li .rename").First.ClickAsync();
        await page.FillAsync(".rename-input", "Multiplication");
        await page.PressAsync(".rename-input", "Enter");
        await Expect(page.Locator("#title")).ToHaveTextAsync("Multiplication");
        await page.FillAsync("#search", "multipl");
        await Expect(page.Locator("#conversation-list li .open")).ToHaveTextAsync("Multiplication");
    }

    [BrowserFact]
    public async Task AServerWithAnApiKey_AsksForTheKeyAndThenWorks()
    {
        var page = await fixture.OpenPage(fixture.KeyedServer);
        await Expect(page.Locator("#key-dialog")).ToBeVisibleAsync();
        await page.FillAsync("#key-input", "wrong-key");
        await page.ClickAsync("#key-save");
        await Expect(page.Locator("#key-error")).ToHaveTextAsync("The server did not accept that key.");
        await page.FillAsync("#key-input", WebUiFixture.ApiKey);
        await page.ClickAsync("#key-save");
        await Expect(page.Locator("#key-dialog")).Not.ToBeVisibleAsync();
        await Expect(page.Locator("#model-info")).ToContainTextAsync("k2-nano");
        await Ask(page, ToolQuestion);
        await Expect(page.Locator(".msg.assistant .tool-result")).ToHaveTextAsync("508.5");
        Assert.Equal(WebUiFixture.ApiKey, await page.EvaluateAsync<string>("() => localStorage.getItem('kimi.apiKey')"));
    }

    [BrowserFact]
    public async Task ARejectedRequest_IsShownInWords()
    {
        var page = await fixture.OpenPage();
        await SaveSettings(page, () => page.FillAsync("#set-temperature", "5"));
        foreach (bool tools in new[] { true, false })
        {
            await SetTools(page, tools);
            await Ask(page, "Hello");
            var error = page.Locator(".msg.assistant").Last.Locator(".error-box");
            await Expect(error).ToContainTextAsync("The server refused the request as invalid (400)");
            await Expect(error).ToContainTextAsync("temperature must be between 0 and 2; got 5");
        }
    }

    [BrowserFact]
    public async Task AConversationLongerThanTheContext_IsShownInWords()
    {
        var page = await fixture.OpenPage();
        await SetTools(page, false);
        await Ask(page, string.Join(' ', Enumerable.Repeat("Belmark Ostdor", 6000)));
        await Expect(page.Locator(".msg.assistant .error-box")).ToContainTextAsync("too long for the model's context of 8192 tokens");
    }

    [BrowserFact]
    public async Task ABusyServer_IsShownInWords()
    {
        var page = await fixture.OpenPage(fixture.BusyServer);
        // Hold the engine's only slot: a generation that runs to its token limit (no end tokens) until cancelled.
        using var hold = new CancellationTokenSource();
        var engine = fixture.BusyService.Engine;
        var started = new TaskCompletionSource();
        var holder = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in engine.GenerateAsync([1, 2, 3], new GenerationOptions { MaxTokens = 8000, Temperature = 0 }, hold.Token))
                    started.TrySetResult();
            }
            catch (OperationCanceledException) { }
        });
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        try
        {
            foreach (bool tools in new[] { true, false })
            {
                await SetTools(page, tools);
                await Ask(page, ToolQuestion);
                await Expect(page.Locator(".msg.assistant").Last.Locator(".error-box")).ToContainTextAsync("The server is busy (429)");
            }
        }
        finally
        {
            hold.Cancel();
            await holder;
        }
    }

    [BrowserFact]
    public async Task PhoneSizedScreen_HidesTheSidebarBehindAMenuAndFits()
    {
        var page = await fixture.OpenPage(viewport: new ViewportSize { Width = 390, Height = 844 });
        await Expect(page.Locator("#menu")).ToBeVisibleAsync();
        Assert.True(await page.EvaluateAsync<bool>("() => document.getElementById('sidebar').getBoundingClientRect().right <= 0"), "sidebar off screen");
        await Ask(page, ToolQuestion);
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"), "no horizontal scrolling");
        var send = await page.Locator("#send").BoundingBoxAsync();
        Assert.NotNull(send);
        Assert.True(send.X + send.Width <= 390 && send.Y + send.Height <= 844, "the send button is on screen");
        var bubble = await page.Locator(".msg.assistant").BoundingBoxAsync();
        Assert.True(bubble!.Width <= 390);
        await page.ClickAsync("#menu");
        await Expect(page.Locator("#conversation-list li")).ToBeVisibleAsync();
        await page.WaitForFunctionAsync("() => { const r = document.getElementById('sidebar').getBoundingClientRect(); return r.left >= 0 && r.right <= 390; }");
        await page.ClickAsync("#conversation-list li .open");
        // Choosing a chat closes the menu again.
        await page.WaitForFunctionAsync("() => document.getElementById('sidebar').getBoundingClientRect().right <= 0");
    }
}
