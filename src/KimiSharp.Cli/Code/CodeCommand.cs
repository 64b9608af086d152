using System.CommandLine;
using System.Text.Json.Nodes;
using KimiSharp.Agent;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Dispatch;
using KimiSharp.Agent.Mcp;
using KimiSharp.Agent.Sessions;
using KimiSharp.Agent.Tools;
using KimiSharp.Client;
using KimiSharp.Engine.Chat;
using Microsoft.Extensions.AI;

namespace KimiSharp.Cli.Code;

/// <summary>
/// <c>kimi code</c>: the terminal coding agent. Against an OpenAI-compatible endpoint (a real K2 on Moonshot's platform,
/// vLLM, SGLang, llama.cpp or <c>kimi serve</c>) it works in a workspace with file, search, shell and fetch tools and
/// any MCP servers, asking before it changes anything; without an endpoint it runs k2-nano in process with its own tools.
/// </summary>
internal static class CodeCommand
{
    public static Command Create()
    {
        var task = new Argument<string[]>("task") { Description = "A task to start with (interactive mode goes on after it)", Arity = ArgumentArity.ZeroOrMore };
        var print = CliOptions.Text("--print", "TASK", "Run TASK without interaction and exit (-p)");
        print.Aliases.Add("-p");
        var workspace = CliOptions.Text("--workspace", "DIR", "The folder the agent may read and change [default: the current folder]");
        var endpoint = CliOptions.Text("--endpoint", "URL", "An OpenAI-compatible API root, e.g. https://api.moonshot.ai/v1 [default: $KIMI_BASE_URL; none: k2-nano in process]");
        var apiKey = CliOptions.Text("--api-key", "KEY", "The endpoint's key [default: $KIMI_API_KEY]");
        var modelName = CliOptions.Text("--model", "NAME", "The model name at the endpoint [default: $KIMI_MODEL_NAME]");
        var localModel = CliOptions.Text("--local-model", "DIR", "Run this model folder in process instead of k2-nano (no endpoint)");
        var mcp = CliOptions.Text("--mcp", "FILE", "An mcp.json ({\"mcpServers\": {...}}) whose servers' tools the agent may use");
        var yolo = CliOptions.Flag("--yolo", "Approve every tool call without asking");
        var plan = CliOptions.Flag("--plan", "Plan mode: read-only tools only");
        var resume = CliOptions.Flag("--continue", "Continue this workspace's latest session");
        var sessionId = CliOptions.Text("--session", "ID", "Continue the session with this id (see /sessions)");
        var output = CliOptions.Choice("--output", "How to print the run", "text", "text", "stream-json");
        var thinking = CliOptions.Choice("--thinking", "The model's thinking: on, off, or the endpoint's default", "default", "default", "on", "off");
        var maxSteps = CliOptions.OptionalInt("--max-steps", "Model steps per task at most [default: 1000]", min: 1);
        var context = CliOptions.OptionalInt("--context", "The endpoint model's context length in tokens, for compaction [default: 131072]", min: 1024);
        var prices = CliOptions.Text("--prices", "FILE", "A price table (JSON, per million tokens) for the cost shown [default: Moonshot's K2 list price]");
        var allowFetch = CliOptions.Text("--allow-fetch", "HOSTS", "Comma-separated host names the fetch tool may reach besides loopback");
        var docs = CliOptions.Text("--docs", "DIR", "A folder of .md/.txt documents the search_docs tool searches");
        var hook = new Option<string[]>("--hook")
        {
            Description = "A shell command run before each tool call with the call as JSON on stdin; exit 2 vetoes it (stderr is the reason). Repeatable",
            HelpName = "CMD", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
        };
        var stopHook = CliOptions.Text("--stop-hook", "CMD", "A shell command run when the agent answers, with the answer as JSON on stdin; exit 2 sends its stderr back to the agent as the next instruction");
        var swarm = CliOptions.Flag("--swarm", "Let the agent split work among parallel sub-agents (spawn_agents, collect_agents)");
        var sessionsDir = CliOptions.Text("--sessions-dir", "DIR", "Where this workspace's sessions are kept [default: $KIMI_HOME/sessions/WORKSPACE-HASH, $KIMI_HOME = ~/.kimisharp]");

        var command = new Command("code", """
            The terminal coding agent. With an endpoint (--endpoint or $KIMI_BASE_URL, $KIMI_API_KEY, $KIMI_MODEL_NAME) it
            reads, edits, searches and runs commands in the workspace, asking before shell commands, file changes and MCP
            tools (--yolo approves all, --plan allows read-only tools only). Without one it runs k2-nano in process with its
            own tools. Sessions are saved as JSONL; --continue resumes the latest. /help lists the slash commands.
            """)
        {
            task, print, workspace, endpoint, apiKey, modelName, localModel, mcp, yolo, plan, resume, sessionId, output, thinking,
            maxSteps, context, prices, allowFetch, docs, sessionsDir, hook, stopHook, swarm,
        };
        command.Exclusive(yolo, plan);
        command.Exclusive(resume, sessionId);
        command.Exclusive(endpoint, localModel);
        command.SetAction(async (r, ct) =>
        {
            string root = Path.GetFullPath(r.GetValue(workspace) ?? Directory.GetCurrentDirectory());
            if (!Directory.Exists(root)) throw new UsageException($"the workspace {root} does not exist");
            bool printMode = r.GetValue(print) is not null;
            bool json = r.GetValue(output) == "stream-json";
            if (json && !printMode) throw new UsageException("--output stream-json needs -p TASK (it is for scripts)");
            var stdout = r.Out();
            IAgentOutput view = json ? new StreamJsonOutput(stdout) : new TerminalAgentOutput(stdout, Terminal.Colors(stdout));
            var input = Console.In;

            string? url = r.GetValue(endpoint) ?? Env(OpenAICompatibleClientOptions.BaseUrlVariable);
            bool local = url is null;
            bool? thinkingOn = r.GetValue(thinking) switch { "on" => true, "off" => false, _ => null };
            IChatClient client;
            string label;
            long contextTokens;
            IReadOnlyList<AIFunction> tools;
            Func<IReadOnlyList<AIFunction>> createTools;
            if (local)
            {
                var service = ModelLocator.LoadChat(r.GetValue(localModel), null, r.Err(), KernelOptions.Settings());
                client = new KimiChatClient(service, ownsService: true);
                label = service.ModelId;
                contextTokens = service.Model.Config.MaxPositionEmbeddings;
                createTools = () => Toolbox.CreateDefault().AsFunctions();
                tools = createTools();
            }
            else
            {
                string? name = r.GetValue(modelName) ?? Env(OpenAICompatibleClientOptions.ModelVariable)
                    ?? throw new UsageException($"an endpoint needs a model name: pass --model NAME or set ${OpenAICompatibleClientOptions.ModelVariable}");
                client = new OpenAICompatibleChatClient(new OpenAICompatibleClientOptions
                {
                    BaseUrl = url!, Model = name, ApiKey = r.GetValue(apiKey) ?? Env(OpenAICompatibleClientOptions.ApiKeyVariable), Thinking = thinkingOn,
                });
                label = name;
                contextTokens = r.GetValue(context) ?? 131_072;
                var hosts = (r.GetValue(allowFetch) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                createTools = () => CodingTools.Create(new Workspace(root), new CodingToolOptions { FetchAllowedHosts = hosts, DocsFolder = r.GetValue(docs) });
                tools = createTools();
            }

            McpToolset? mcpTools = null;
            if (r.GetValue(mcp) is { } mcpFile)
            {
                McpConfig config;
                try { config = await McpConfig.LoadAsync(mcpFile, cancellationToken: ct); }
                catch (McpConfigException e) { throw new UsageException(e.Message); }
                mcpTools = await McpToolset.ConnectAsync(config, McpConnectOptions.Default with { ReservedToolNames = tools.Select(t => t.Name).ToArray() }, null, ct);
                foreach (var failure in mcpTools.Failures) view.Error($"MCP server '{failure.ServerName}' is not available: {failure.Message}");
                tools = [.. tools, .. mcpTools.Tools];
            }

            var agentOptions = local
                ? new AgentOptions { Thinking = thinkingOn }
                : new AgentOptions
                {
                    Window = ContextWindow.Unlimited, MaxTokensPerStep = 16_384, TokenBudget = 20_000_000, Thinking = thinkingOn,
                    Sampling = new ChatOptions { Temperature = thinkingOn == false ? 0.6f : 1.0f },
                    Compaction = new CompactionOptions { ContextTokens = (int)Math.Min(int.MaxValue, contextTokens) },
                };
            if (r.GetValue(maxSteps) is int steps) agentOptions = agentOptions with { MaxSteps = steps };
            if (r.GetValue(stopHook) is { } stopCommand)
                agentOptions = agentOptions with { OnStop = (result, token) => StopHook.RunAsync(stopCommand, root, result, view, token) };

            var mode = r.GetValue(yolo) ? ApprovalMode.Yolo : r.GetValue(plan) ? ApprovalMode.Plan : ApprovalMode.Ask;
            var priceTable = local ? PriceTable.Free : r.GetValue(prices) is { } pricesFile ? PriceTable.Load(pricesFile) : PriceTable.Moonshot;
            await using var codeSwarm = r.GetValue(swarm) ? CodeSwarm.Create(client, createTools, mode, agentOptions, priceTable, local ? null : SystemPrompt(root), view) : null;
            if (codeSwarm is not null)
            {
                tools = [.. tools, .. codeSwarm.Swarm.Tools];
                view = codeSwarm.Wrap(view);
            }
            var dispatcher = new ToolDispatcher(tools, new ToolDispatcherOptions
            {
                Mode = mode,
                // Without a person at the keyboard (-p) nothing that changes things runs unless --yolo says so.
                Approver = printMode ? null : new TerminalApprover(input, view),
                Hooks = (r.GetValue(hook) ?? []).Select(c => (KimiSharp.Agent.Hooks.IToolHooks)new KimiSharp.Agent.Hooks.ShellCommandHook(
                    new KimiSharp.Agent.Hooks.ShellCommandHookOptions(c) { WorkingDirectory = root })).ToArray(),
            });

            string sessions = r.GetValue(sessionsDir) is { } chosen ? Path.GetFullPath(chosen) : CodeAgent.SessionsDirectory(root);
            var header = new JsonObject { ["model"] = label, ["endpoint"] = url ?? "in-process", ["workspace"] = root };
            AgentSession NewSession() => AgentSession.Create(sessions, header, priceTable);
            AgentSession session;
            if (r.GetValue(sessionId) is { } id)
            {
                string path = Path.Combine(sessions, id + ".jsonl");
                if (!File.Exists(path)) throw new UsageException($"no session '{id}' for this workspace (in {sessions})");
                session = AgentSession.Resume(path, priceTable);
            }
            else if (r.GetValue(resume))
                session = AgentSession.Latest(sessions) is { } latest ? AgentSession.Resume(latest, priceTable) : NewSession();
            else session = NewSession();

            // k2-nano's memory tool is its scratchpad (a to-do list, a running total): a resumed session gets it back by
            // replaying the memory calls that succeeded. No other tool is run again.
            if (local && session.Messages.Count > 0 && tools.OfType<AgentToolFunction>().FirstOrDefault(t => t.Name == "memory") is { } memory)
                ReplayScratchpad(session.Messages, memory.Tool);

            var preamble = new JsonArray();
            if (!local) preamble.Add(AgentMessages.System(SystemPrompt(root)));

            await using var agent = new CodeAgent(client, label, local, dispatcher, mcpTools, agentOptions, session, NewSession, preamble, view, priceTable, contextTokens);
            codeSwarm?.Attach(agent);
            if (json) view.Info(session.Path, "session");
            else view.Info($"kimi code — {label}{(local ? " (in process, k2-nano tools)" : "")} in {root}\nsession {session.Id} ({session.Path}); /help for commands", "status");

            // A session killed mid-task (even mid-step, with calls still to answer) carries that task on first.
            if (AgentRunner.IsUnfinished(session.Messages))
            {
                view.Info("resuming the interrupted task", "notice");
                if (await agent.ContinueAsync(ct) is null) return CliApp.Cancelled;
            }

            if (printMode)
            {
                var result = await agent.RunTurnAsync(r.GetValue(print)!, ct);
                if (result is null) return CliApp.Cancelled;
                return result.StopReason == AgentResult.Answer ? CliApp.Ok : CliApp.BadInput;
            }

            var first = r.GetValue(task) ?? [];
            if (first.Length > 0 && await agent.RunTurnAsync(string.Join(' ', first), ct) is null && ct.IsCancellationRequested) return CliApp.Cancelled;
            var terminal = view as TerminalAgentOutput;
            while (!ct.IsCancellationRequested)
            {
                stdout.Write("> ");
                string? line = await input.ReadLineAsync(ct);
                if (line is null) break;
                if (line.Trim().Length == 0) continue;
                if (line.TrimStart().StartsWith('/'))
                {
                    if (!await agent.CommandAsync(line, terminal, sessions, ct)) break;
                    continue;
                }
                try
                {
                    await agent.RunTurnAsync(line, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The endpoint refused (401, 400 with its message) or stayed down past the retries: say so and
                    // keep the session; the finished steps are in it.
                    view.Error(e.Message);
                }
            }
            return CliApp.Ok;
        });
        return command;
    }

    internal static int ReplayScratchpad(JsonArray messages, IAgentTool memory)
    {
        var results = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in messages)
            if (AgentMessages.Role(m) == "tool" && m!["tool_call_id"]?.GetValue<string>() is { } id) results[id] = AgentMessages.Text(m["content"]);
        int replayed = 0;
        foreach (var m in messages)
        {
            if (m?["tool_calls"] is not JsonArray calls) continue;
            foreach (var call in calls)
            {
                if (call?["function"]?["name"]?.GetValue<string>() != memory.Name) continue;
                if (!results.TryGetValue(call["id"]?.GetValue<string>() ?? "", out var result) || result.StartsWith("error:", StringComparison.Ordinal)) continue;
                try
                {
                    if (JsonNode.Parse(AgentMessages.Text(call["function"]?["arguments"])) is JsonObject arguments)
                    {
                        memory.Invoke(arguments);
                        replayed++;
                    }
                }
                catch (System.Text.Json.JsonException) { }
            }
        }
        return replayed;
    }

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    /// <summary>The coding agent's instructions, with the workspace's AGENTS.md files.</summary>
    internal static string SystemPrompt(string root)
    {
        string prompt = $"""
            You are Kimi Code, a coding agent working in the folder {root} on the user's machine. Work step by step with
            the tools: read files before you change them, make small exact edits with edit_file, run the project's
            tests or build with shell to check your work, and fix what fails. Paths are relative to the workspace; you
            cannot leave it. Tool calls that change things may be refused by the user: read their feedback and adapt.
            When the task is done, answer briefly with what you changed and how you checked it.
            Today is {DateTime.UtcNow:yyyy-MM-dd}.
            """;
        if (AgentsMd.Load(root, Directory.GetCurrentDirectory()) is { } instructions)
            prompt += "\n\n# Project instructions (AGENTS.md)\n\n" + instructions;
        return prompt;
    }
}

/// <summary>Asks at the terminal before a tool changes anything: yes once, always for this session, or no with feedback.</summary>
internal sealed class TerminalApprover(TextReader input, IAgentOutput output) : IApprover
{
    public async ValueTask<ApprovalDecision> DecideAsync(ApprovalRequest request, CancellationToken cancellationToken)
    {
        output.Info($"{request.ToolName} wants to: {request.Summary}");
        if (request.Diff is { Length: > 0 } diff) output.Diff(diff);
        while (true)
        {
            output.Info("allow? [y] yes  [a] yes, and don't ask again for " + request.ToolName + "  [n] no (then say why)");
            string? answer = await input.ReadLineAsync(cancellationToken);
            switch (answer?.Trim().ToLowerInvariant())
            {
                case null: return ApprovalDecision.Reject("the user is not there to approve it");
                case "y" or "yes": return ApprovalDecision.ApproveOnce;
                case "a" or "always": return ApprovalDecision.ApproveForSession;
                case "n" or "no":
                    output.Info("what should it do instead? (empty: just don't)");
                    return ApprovalDecision.Reject(await input.ReadLineAsync(cancellationToken) ?? "");
            }
        }
    }
}
