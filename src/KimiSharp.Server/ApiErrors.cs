using System.Text.Json.Nodes;

namespace KimiSharp.Server;

/// <summary>A request the API refuses; rendered in the calling API's own error shape.</summary>
public sealed class ApiException(int status, string type, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    /// <summary>OpenAI error type (invalid_request_error, authentication_error, …).</summary>
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static ApiException BadRequest(string message, string? param = null, string? code = null) =>
        new(400, "invalid_request_error", message, param, code);
}

/// <summary>How response JSON is written: non-ASCII text stays readable UTF-8 instead of \uXXXX escapes.</summary>
internal static class ApiJson
{
    public static readonly System.Text.Json.JsonSerializerOptions Options = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Write(JsonNode node) => node.ToJsonString(Options);
}

/// <summary>Error bodies as OpenAI and Anthropic clients expect them.</summary>
internal static class ApiErrors
{
    public static JsonObject OpenAi(ApiException e) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = e.Message, ["type"] = e.Type, ["param"] = e.Param, ["code"] = e.Code ?? e.Type,
        },
    };

    public static JsonObject Anthropic(ApiException e) => new()
    {
        ["type"] = "error",
        ["error"] = new JsonObject
        {
            ["type"] = e.Status switch
            {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                >= 500 => "api_error",
                _ => "invalid_request_error",
            },
            ["message"] = e.Message,
        },
    };
}
