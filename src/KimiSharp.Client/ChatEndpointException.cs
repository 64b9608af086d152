using System.Net;
using System.Text.Json;

namespace KimiSharp.Client;

/// <summary>
/// A chat-completions endpoint refused a request, could not be reached after the retries, or answered something that
/// is not the protocol. <see cref="Exception.Message"/> names the status and the server's own words.
/// </summary>
public sealed class ChatEndpointException : Exception
{
    /// <summary>The HTTP status of the (last) answer; null when none came (timeouts, connection failures).</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>The server's error message (from <c>{"error":{"message":…}}</c> or the raw body, clipped); null if it gave none.</summary>
    public string? ServerMessage { get; }

    public ChatEndpointException(string message, HttpStatusCode? statusCode = null, string? serverMessage = null, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        ServerMessage = serverMessage;
    }

    internal const int MaxServerMessageLength = 1000;

    /// <summary>The exception for an error status, with the message dug out of the body.</summary>
    internal static ChatEndpointException FromStatus(HttpStatusCode status, string body, int attempts)
    {
        string? serverMessage = ServerMessageOf(body);
        string tries = attempts > 1 ? $" after {attempts} attempts" : "";
        string message = $"the chat endpoint answered {(int)status} ({status}){tries}"
            + (serverMessage is null ? "" : $": {serverMessage}");
        return new ChatEndpointException(message, status, serverMessage);
    }

    /// <summary>
    /// The error text of a body: OpenAI's <c>{"error":{"message":…}}</c>, the <c>{"error":"…"}</c>,
    /// <c>{"message":…}</c> and <c>{"detail":…}</c> shapes other servers use, or else the body itself, clipped.
    /// </summary>
    internal static string? ServerMessageOf(string body)
    {
        if (string.IsNullOrWhiteSpace(body)) return null;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && MessageOf(doc.RootElement) is { } found) return Clip(found);
        }
        catch (JsonException)
        {
            // Not JSON (an HTML error page, a proxy's text): the raw body is the best we have.
        }
        return Clip(body.Trim());
    }

    internal static string? MessageOf(JsonElement error)
    {
        foreach (string name in (ReadOnlySpan<string>)["error", "message", "detail"])
        {
            if (!error.TryGetProperty(name, out var value)) continue;
            if (value.ValueKind == JsonValueKind.String) return value.GetString();
            if (value.ValueKind == JsonValueKind.Object && MessageOf(value) is { } inner) return inner;
            if (value.ValueKind != JsonValueKind.Null) return value.GetRawText();
        }
        return null;
    }

    internal static string Clip(string text) =>
        text.Length <= MaxServerMessageLength ? text : string.Concat(text.AsSpan(0, MaxServerMessageLength), "…");
}
