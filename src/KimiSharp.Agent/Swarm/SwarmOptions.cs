using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Sessions;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Swarm;

/// <summary>How an <see cref="AgentSwarm"/> runs the sub-agents an orchestrator spawns.</summary>
public sealed record SwarmOptions
{
    /// <summary>The model sub-agents run on unless a task names another in <see cref="Models"/> (often the orchestrator's own client).</summary>
    public required IChatClient Model { get; init; }

    /// <summary>Other models a task may choose by name (another endpoint, a smaller model); the names are offered to the orchestrator.</summary>
    public IReadOnlyDictionary<string, IChatClient> Models { get; init; } = new Dictionary<string, IChatClient>();

    /// <summary>
    /// Makes a fresh set of tools for one sub-agent. Called once per sub-agent so that tools with state (the memory
    /// scratchpad, a browser) are never shared between siblings.
    /// </summary>
    public required Func<IReadOnlyList<AIFunction>> CreateTools { get; init; }

    /// <summary>Wraps one sub-agent's tools for dispatch (approvals, timeouts); default: a <see cref="ToolDispatcher"/> with default settings.</summary>
    public Func<IReadOnlyList<AIFunction>, IToolDispatcher>? CreateDispatcher { get; init; }

    /// <summary>The sub-agents' run settings (window, sampling, per-step tokens, thinking); steps and tokens are replaced per task.</summary>
    public AgentOptions AgentOptions { get; init; } = new();

    /// <summary>Sub-agents running at once at most, over the whole swarm (foreground and background); the rest wait.
    /// Bounded in practice by the engine's batch size or the endpoint's rate limit.</summary>
    public int MaxConcurrency { get; init; } = 100;

    /// <summary>Sub-tasks one <c>spawn_agents</c> call may name at most.</summary>
    public int MaxTasksPerCall { get; init; } = 100;

    /// <summary>Steps a sub-agent gets when its task names none; a task may ask for up to <see cref="MaxStepsCeiling"/>.</summary>
    public int DefaultMaxSteps { get; init; } = 30;

    public int MaxStepsCeiling { get; init; } = 200;

    /// <summary>Tokens a sub-agent may generate when its task names no budget; a task may ask for up to <see cref="MaxTokensCeiling"/>.</summary>
    public long DefaultMaxTokens { get; init; } = 100_000;

    public long MaxTokensCeiling { get; init; } = 1_000_000;

    /// <summary>How long a sub-agent may run when its task names no limit; a task may ask for up to <see cref="MaxTimeout"/>.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Kept under the tool dispatcher's default 15 minutes so a foreground spawn finishes before its own call times out.</summary>
    public TimeSpan MaxTimeout { get; init; } = TimeSpan.FromMinutes(14);

    /// <summary>System instructions for a sub-agent whose task gives none; null: the task alone.</summary>
    public string? DefaultInstructions { get; init; }

    /// <summary>Where sub-agent sessions are written when <see cref="AgentSwarm.ParentSession"/> is not set; null: not written.</summary>
    public string? SessionsDirectory { get; init; }

    /// <summary>Prices for the cost in <see cref="SwarmReport"/> and sub-agent sessions.</summary>
    public PriceTable Prices { get; init; } = PriceTable.Free;

    /// <summary>
    /// Called for every sub-agent event (start, each <see cref="AgentEvent"/>, the final report). Calls are serialized:
    /// never two at once, even though the sub-agents run in parallel.
    /// </summary>
    public Action<SwarmEvent>? OnEvent { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Model);
        ArgumentNullException.ThrowIfNull(CreateTools);
        if (MaxConcurrency < 1) throw new ArgumentException("MaxConcurrency must be at least 1");
        if (MaxTasksPerCall < 1) throw new ArgumentException("MaxTasksPerCall must be at least 1");
        if (DefaultMaxSteps < 1 || MaxStepsCeiling < DefaultMaxSteps) throw new ArgumentException("need 1 <= DefaultMaxSteps <= MaxStepsCeiling");
        if (DefaultMaxTokens < 1 || MaxTokensCeiling < DefaultMaxTokens) throw new ArgumentException("need 1 <= DefaultMaxTokens <= MaxTokensCeiling");
        if (DefaultTimeout <= TimeSpan.Zero || MaxTimeout < DefaultTimeout) throw new ArgumentException("need 0 < DefaultTimeout <= MaxTimeout");
        foreach (var (name, client) in Models)
            if (string.IsNullOrWhiteSpace(name) || client is null) throw new ArgumentException("Models needs non-empty names and non-null clients");
    }
}

/// <summary>What a swarm reports about its sub-agents while they run.</summary>
public abstract record SwarmEvent(string AgentId)
{
    /// <summary>A sub-agent started (after waiting for a free slot).</summary>
    public sealed record Started(string AgentId, string Task, string? ParentCallId, bool Background, string? SessionPath) : SwarmEvent(AgentId);

    /// <summary>One event of a sub-agent's run.</summary>
    public sealed record Progress(string AgentId, AgentEvent Event) : SwarmEvent(AgentId);

    /// <summary>A sub-agent ended: its report (an answer, or why it failed).</summary>
    public sealed record Ended(SubAgentReport Report) : SwarmEvent(Report.Id);
}
