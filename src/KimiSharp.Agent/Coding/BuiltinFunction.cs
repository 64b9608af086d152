using System.Text.Json;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Coding;

/// <summary>A tool call the tool itself refuses (bad argument, missing file…); the message goes to the model.</summary>
public sealed class ToolFailureException(string message) : Exception(message);

/// <summary>
/// Base of the built-in coding tools: a hand-written JSON schema, <see cref="ToolTraits"/>, and a body that reports
/// failures by throwing <see cref="ToolFailureException"/> or <see cref="WorkspaceEscapeException"/>, which become
/// <c>error: …</c> results rather than exceptions.
/// </summary>
public abstract class BuiltinFunction : AIFunction, IToolResultFunction
{
    private readonly JsonElement _schema;
    private readonly IReadOnlyDictionary<string, object?> _traits;

    protected BuiltinFunction(string name, string description, string schemaJson, bool readOnly, bool needsApproval)
    {
        Name = name;
        Description = description;
        using var document = JsonDocument.Parse(schemaJson);
        _schema = document.RootElement.Clone();
        _traits = ToolTraits.Create(readOnly, needsApproval, source: "builtin");
    }

    public sealed override string Name { get; }

    public sealed override string Description { get; }

    public sealed override JsonElement JsonSchema => _schema;

    public sealed override IReadOnlyDictionary<string, object?> AdditionalProperties => _traits;

    public bool ValidatesOwnArguments => false;

    public async ValueTask<ToolResult> InvokeForResultAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        try
        {
            return ToolResult.Ok(await RunAsync(new ToolArguments(arguments), cancellationToken).ConfigureAwait(false));
        }
        catch (ToolFailureException e)
        {
            return ToolResult.Error(e.Message);
        }
        catch (WorkspaceEscapeException e)
        {
            return ToolResult.Error(e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ToolResult.Error(e.Message);
        }
    }

    protected sealed override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken) =>
        (await InvokeForResultAsync(arguments, cancellationToken).ConfigureAwait(false)).Content;

    /// <summary>The tool's work; returns the text for the model.</summary>
    protected abstract ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken);
}

/// <summary>Typed reads of tool arguments, whether they arrive as <see cref="JsonElement"/>s (from JSON) or as .NET values.</summary>
public sealed class ToolArguments(AIFunctionArguments arguments)
{
    public AIFunctionArguments Raw { get; } = arguments;

    public string GetString(string name) =>
        GetOptionalString(name) ?? throw new ToolFailureException($"argument '{name}' is required");

    public string? GetOptionalString(string name)
    {
        JsonElement? value = Get(name);
        if (value is null) return null;
        if (value.Value.ValueKind != JsonValueKind.String) throw new ToolFailureException($"argument '{name}' must be a string");
        return value.Value.GetString();
    }

    public int? GetOptionalInt(string name, int min, int max)
    {
        JsonElement? value = Get(name);
        if (value is null) return null;
        if (value.Value.ValueKind != JsonValueKind.Number || !value.Value.TryGetDouble(out double number)
            || number != Math.Floor(number))
            throw new ToolFailureException($"argument '{name}' must be an integer");
        if (number < min || number > max) throw new ToolFailureException($"argument '{name}' must be between {min} and {max}");
        return (int)number;
    }

    public bool GetBool(string name, bool defaultValue)
    {
        JsonElement? value = Get(name);
        if (value is null) return defaultValue;
        return value.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ToolFailureException($"argument '{name}' must be a boolean"),
        };
    }

    /// <summary>The argument as JSON, or null when absent or JSON null.</summary>
    public JsonElement? Get(string name)
    {
        if (!Raw.TryGetValue(name, out object? value) || value is null) return null;
        JsonElement element = value is JsonElement e ? e : JsonSerializer.SerializeToElement(value, AIJsonUtilities.DefaultOptions);
        return element.ValueKind == JsonValueKind.Null ? null : element;
    }
}
