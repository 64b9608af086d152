using System.Text.Json.Nodes;

namespace KimiSharp.Agent.Tools;

/// <summary>Looks up an attribute of a city in a <see cref="KnowledgeBase"/>.</summary>
public sealed class LookupTool(KnowledgeBase knowledgeBase) : IAgentTool
{
    public KnowledgeBase KnowledgeBase { get; } = knowledgeBase ?? throw new ArgumentNullException(nameof(knowledgeBase));

    public string Name => "lookup";

    public JsonObject Declaration => ToolArgs.Declaration(Name,
        "Look up an attribute of a city.",
        new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject
            {
                ["entity"] = new JsonObject { ["type"] = "string" },
                ["attribute"] = new JsonObject { ["type"] = "string", ["enum"] = ToolArgs.Strings(KnowledgeBase.Attributes) },
            },
            ["required"] = new JsonArray("entity", "attribute"),
        });

    public ToolResult Invoke(JsonObject arguments) => ToolArgs.Guard(() =>
    {
        if (!ToolArgs.TryGetString(arguments, "entity", out string entity)) return ToolResult.Error("'entity' must be a string");
        if (!ToolArgs.TryGetString(arguments, "attribute", out string attribute)) return ToolResult.Error("'attribute' must be a string");
        KnowledgeEntity? found = KnowledgeBase.Find(entity);
        if (found is null) return ToolResult.Error($"no entity named '{ToolArgs.Clip(entity)}'");
        if (!KnowledgeBase.Attributes.Contains(attribute))
            return ToolResult.Error($"unknown attribute '{ToolArgs.Clip(attribute)}' (known: {string.Join(", ", KnowledgeBase.Attributes)})");
        return ToolResult.Ok(found.Attribute(attribute));
    });
}
