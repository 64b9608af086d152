using System.Diagnostics;
using System.Text.Json.Nodes;

namespace KimiSharp.Cli.Tests;

/// <summary>A real `kimi train` process killed with SIGKILL mid-run, then resumed, ends with the same weights.</summary>
public sealed class TrainKillResumeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kimi-kill-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteConfig(string name)
    {
        string corpus = Path.Combine(_dir, "corpus.txt");
        if (!File.Exists(corpus)) File.WriteAllText(corpus, string.Concat(Enumerable.Range(0, 300).Select(i => $"line {i % 13} says hello to {i % 7}. ")));
        var config = new JsonObject
        {
            ["model"] = TinyTrainModel.Config(),
            ["text_files"] = new JsonArray(corpus), ["tokenizer_ranks"] = 300, ["batch_size"] = 2, ["seq_len"] = 32,
            ["steps"] = 400, ["optimizer"] = "muonclip", ["lr"] = 0.01, ["seed"] = 3, ["out"] = Path.Combine(_dir, name),
            ["checkpoint_every"] = 5,
        };
        string path = Path.Combine(_dir, name + ".json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    private static Process Start(params string[] args)
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(LogitsCommandTests.RepositoryRoot, "kimi"), .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = LogitsCommandTests.RepositoryRoot,
        };
        return Process.Start(start)!;
    }

    private static async Task Finish(Process process)
    {
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"kimi train exited {process.ExitCode}: {await stderr} {await stdout}");
    }

    [Fact]
    public async Task Killed_and_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one()
    {
        using (var straight = Start("train", "--config", WriteConfig("straight"))) await Finish(straight);

        string config = WriteConfig("killed");
        string stepFile = Path.Combine(_dir, "killed", "state", "step.txt");
        using (var victim = Start("train", "--config", config))
        {
            _ = victim.StandardOutput.ReadToEndAsync();
            _ = victim.StandardError.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddMinutes(8);
            while (DateTime.UtcNow < deadline && !(File.Exists(stepFile) && int.TryParse(File.ReadAllText(stepFile), out int s) && s >= 14))
                await Task.Delay(10);
            Assert.False(victim.HasExited, "the run finished before it could be killed");
            victim.Kill(entireProcessTree: true); // SIGKILL: no chance to save anything
            await victim.WaitForExitAsync();
        }
        int killedAt = int.Parse(File.ReadAllText(stepFile));
        Assert.InRange(killedAt, 14, 398);
        using (var resumed = Start("train", "--config", config, "--resume")) await Finish(resumed);

        byte[] expected = File.ReadAllBytes(Path.Combine(_dir, "straight", "final", "model.safetensors"));
        byte[] actual = File.ReadAllBytes(Path.Combine(_dir, "killed", "final", "model.safetensors"));
        Assert.True(expected.AsSpan().SequenceEqual(actual), "resumed weights differ from the uninterrupted run");
        var steps = File.ReadAllLines(Path.Combine(_dir, "killed", "metrics.csv")).Skip(1).Select(l => int.Parse(l.Split(',')[0])).ToArray();
        Assert.Equal(Enumerable.Range(0, 400), steps); // no lost or repeated steps
    }
}
