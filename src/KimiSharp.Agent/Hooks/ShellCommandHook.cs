using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KimiSharp.Agent.Hooks;

/// <summary>Settings of a <see cref="ShellCommandHook"/>.</summary>
/// <param name="Command">Run with <c>bash -c</c>; receives the call as JSON on stdin.</param>
public sealed record ShellCommandHookOptions(string Command)
{
    /// <summary>A hook still running after this is killed and the call vetoed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the command runs; null for the current directory.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Regular expression the tool name must fully match for the hook to run; null for every tool.</summary>
    public string? ToolNamePattern { get; init; }
}

/// <summary>
/// A before-call hook that runs an external command, in the manner of Claude Code's hooks: the command reads
/// <c>{"event":"before_tool_call","tool_name":…,"arguments":{…}}</c> on stdin; exit code 0 lets the call go on,
/// 2 vetoes it with stderr as the reason, and any other exit code is logged and lets it go on. A hook that times out
/// is killed and vetoes the call (a guard that cannot answer should not wave calls through).
/// </summary>
public sealed class ShellCommandHook : IToolHooks
{
    public const int VetoExitCode = 2;

    private readonly ShellCommandHookOptions _options;
    private readonly Regex? _toolName;
    private readonly ILogger _logger;

    public ShellCommandHook(ShellCommandHookOptions options, ILogger<ShellCommandHook>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Command);
        _options = options;
        _toolName = options.ToolNamePattern is null ? null : new Regex($"^(?:{options.ToolNamePattern})$", RegexOptions.CultureInvariant);
        _logger = logger ?? NullLogger<ShellCommandHook>.Instance;
    }

    public async ValueTask<BeforeToolCallDecision> BeforeToolCallAsync(ToolCall call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (_toolName is not null && !_toolName.IsMatch(call.ToolName)) return BeforeToolCallDecision.Allow;

        var run = await HookProcess.RunAsync(_options.Command, _options.WorkingDirectory, Payload(call), _options.Timeout, cancellationToken)
            .ConfigureAwait(false);
        if (run.TimedOut)
        {
            _logger.LogWarning("Hook '{Command}' timed out after {Timeout} for tool {Tool}", _options.Command, _options.Timeout, call.ToolName);
            return BeforeToolCallDecision.Veto($"the hook '{_options.Command}' did not answer within {_options.Timeout.TotalSeconds:0.###} s");
        }
        string errorText = run.Stderr;
        switch (run.ExitCode)
        {
            case 0:
                return BeforeToolCallDecision.Allow;
            case VetoExitCode:
                return BeforeToolCallDecision.Veto(errorText.Length > 0 ? errorText : $"blocked by the hook '{_options.Command}'");
            default:
                _logger.LogWarning("Hook '{Command}' exited with {ExitCode} for tool {Tool}: {Stderr}",
                    _options.Command, run.ExitCode, call.ToolName, errorText);
                return BeforeToolCallDecision.Allow;
        }
    }

    private static string Payload(ToolCall call)
    {
        JsonNode? arguments;
        try
        {
            arguments = JsonNode.Parse(string.IsNullOrWhiteSpace(call.ArgumentsJson) ? "{}" : call.ArgumentsJson);
        }
        catch (JsonException)
        {
            arguments = call.ArgumentsJson;
        }
        return new JsonObject
        {
            ["event"] = "before_tool_call",
            ["tool_name"] = call.ToolName,
            ["arguments"] = arguments,
        }.ToJsonString();
    }
}
