namespace KimiSharp.Engine.Constraints;

/// <summary>
/// A strict schema uses a keyword (or a keyword value) that constrained decoding cannot enforce. An
/// <see cref="ArgumentException"/>, so the server answers 400; a schema declared <c>"strict": false</c> has such
/// keywords ignored instead (listed in <see cref="JsonSchemaMatcher.IgnoredKeywords"/>).
/// </summary>
public sealed class UnsupportedSchemaKeywordException : ArgumentException
{
    public UnsupportedSchemaKeywordException(string keyword, string schemaPath, string reason)
        : base($"schema keyword '{keyword}' at {schemaPath} cannot be enforced by constrained decoding ({reason}); " +
               "declare the schema \"strict\": false to have it ignored")
    {
        Keyword = keyword;
        SchemaPath = schemaPath;
    }

    /// <summary>The keyword, e.g. <c>uniqueItems</c>.</summary>
    public string Keyword { get; }

    /// <summary>JSON pointer of the schema object that holds it, e.g. <c>#/properties/tags</c>.</summary>
    public string SchemaPath { get; }
}
