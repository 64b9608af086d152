using System.Text.Json;
using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Dispatch;

/// <summary>An AIFunction with a schema, traits and a body supplied by the test; counts its calls.</summary>
internal sealed class FakeFunction(
    string name,
    Func<AIFunctionArguments, CancellationToken, ValueTask<object?>> body,
    bool readOnly = false,
    bool needsApproval = false,
    string schema = """{"type":"object","properties":{"text":{"type":"string"}},"additionalProperties":false}""") : AIFunction
{
    private readonly JsonElement _schema = JsonDocument.Parse(schema).RootElement.Clone();
    private readonly IReadOnlyDictionary<string, object?> _traits = ToolTraits.Create(readOnly, needsApproval, "test");
    private int _calls;

    public override string Name => name;

    public override string Description => "test tool " + name;

    public override JsonElement JsonSchema => _schema;

    public override IReadOnlyDictionary<string, object?> AdditionalProperties => _traits;

    public int Calls => _calls;

    public AIFunctionArguments? LastArguments { get; private set; }

    public static FakeFunction Echo(string name, bool readOnly = false, bool needsApproval = false) =>
        new(name, (args, _) => ValueTask.FromResult<object?>("echo:" + (args.TryGetValue("text", out object? t) ? t?.ToString() : "")),
            readOnly, needsApproval);

    protected override ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        LastArguments = arguments;
        return body(arguments, cancellationToken);
    }
}

/// <summary>Answers approval requests from a script and records them.</summary>
internal sealed class ScriptedApprover(params ApprovalDecision[] decisions) : IApprover
{
    private readonly Queue<ApprovalDecision> _decisions = new(decisions);

    public List<ApprovalRequest> Requests { get; } = [];

    public ValueTask<ApprovalDecision> DecideAsync(ApprovalRequest request, CancellationToken cancellationToken)
    {
        Requests.Add(request);
        if (_decisions.Count == 0) throw new InvalidOperationException("the approver was asked more often than the test expected");
        return ValueTask.FromResult(_decisions.Dequeue());
    }
}
