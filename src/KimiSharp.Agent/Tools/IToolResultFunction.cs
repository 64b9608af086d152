using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tools;

/// <summary>
/// An <see cref="AIFunction"/> that can also report whether its text is a failure. Plain <see cref="AIFunction.InvokeAsync"/>
/// returns only the text (what the model sees); the dispatcher prefers this to keep the error flag.
/// </summary>
public interface IToolResultFunction
{
    /// <summary>True when the tool checks its own arguments and wants them unvalidated, so its own messages reach the model.</summary>
    bool ValidatesOwnArguments { get; }

    ValueTask<ToolResult> InvokeForResultAsync(AIFunctionArguments arguments, CancellationToken cancellationToken);
}
