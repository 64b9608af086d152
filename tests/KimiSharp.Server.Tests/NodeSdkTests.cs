using System.Diagnostics;
using System.Text.Json;

namespace KimiSharp.Server.Tests;

/// <summary>The official `openai` and `@anthropic-ai/sdk` npm packages against the server (installed with npm ci).</summary>
[Collection("server")]
public sealed class NodeSdkTests(ServerFixture fixture)
{
    internal static string NodeFolder
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "KimiSharp.slnx")))
                    return Path.Combine(dir.FullName, "tests", "KimiSharp.Server.Tests", "node");
            throw new DirectoryNotFoundException("no KimiSharp.slnx above the test binaries");
        }
    }

    private static readonly SemaphoreSlim s_install = new(1, 1);

    /// <summary>
    /// Installs the npm packages once per test process. Test classes run in parallel, and two <c>npm ci</c> runs in one
    /// folder corrupt each other's node_modules, so every caller goes through this one gate.
    /// </summary>
    internal static async Task EnsurePackagesAsync(string folder)
    {
        await s_install.WaitAsync();
        try
        {
            if (File.Exists(Path.Combine(folder, "node_modules", ".kimisharp-installed"))) return;
            var install = await Run("npm", "ci --no-audit --no-fund", folder);
            Assert.True(install.Code == 0, "npm ci failed: " + install.Err);
            File.WriteAllText(Path.Combine(folder, "node_modules", ".kimisharp-installed"), "");
        }
        finally
        {
            s_install.Release();
        }
    }

    internal static async Task<(int Code, string Out, string Err)> Run(string file, string arguments, string workingDirectory)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task OpenAI_and_Anthropic_javascript_sdks_work_and_agree_at_temperature_zero()
    {
        string folder = NodeFolder;
        await EnsurePackagesAsync(folder);
        string baseUrl = fixture.BaseUri.ToString().TrimEnd('/');
        var (code, output, error) = await Run("node", $"clients.mjs {baseUrl} {fixture.ModelId} {ServerFixture.ApiKey}", folder);
        Assert.True(code == 0, $"node exited {code}: {error}");
        using var doc = JsonDocument.Parse(output);
        var r = doc.RootElement;

        string openAiContent = r.GetProperty("openai").GetProperty("content").GetString()!;
        string openAiReasoning = r.GetProperty("openai").GetProperty("reasoning").GetString()!;
        Assert.Equal(openAiContent, r.GetProperty("openaiStream").GetProperty("content").GetString());
        Assert.Equal(openAiReasoning, r.GetProperty("openaiStream").GetProperty("reasoning").GetString());
        Assert.True(r.GetProperty("openaiStream").GetProperty("usage").GetProperty("completion_tokens").GetInt32() > 0);

        // The same conversation through the Anthropic API yields the same tokens (temperature 0 × 0.6 = 0).
        Assert.Equal(openAiContent, r.GetProperty("anthropic").GetProperty("text").GetString());
        Assert.Equal(openAiReasoning, r.GetProperty("anthropic").GetProperty("thinking").GetString());
        Assert.Equal(openAiContent, r.GetProperty("anthropicStream").GetProperty("text").GetString());
        var events = r.GetProperty("anthropicStream").GetProperty("events").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal("message_start", events[0]);
        Assert.Equal("message_stop", events[^1]);
        Assert.Contains("message_delta", events);

        Assert.Equal("lookup", r.GetProperty("openaiTool").GetProperty("name").GetString());
        Assert.Equal("tool_calls", r.GetProperty("openaiTool").GetProperty("finish").GetString());
        Assert.True(r.GetProperty("openaiTool").GetProperty("arguments").GetProperty("q").GetString()!.EnumerateRunes().Count() <= 8);
        Assert.Equal("lookup", r.GetProperty("anthropicTool").GetProperty("name").GetString());
        Assert.Equal("tool_use", r.GetProperty("anthropicTool").GetProperty("stop").GetString());
        Assert.Equal(JsonValueKind.String, r.GetProperty("anthropicTool").GetProperty("input").GetProperty("q").ValueKind);

        Assert.Equal(404, r.GetProperty("anthropicError").GetProperty("status").GetInt32());
        Assert.Equal("not_found_error", r.GetProperty("anthropicError").GetProperty("type").GetString());
    }
}
