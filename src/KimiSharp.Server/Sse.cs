using System.Text;
using System.Text.Json.Nodes;

namespace KimiSharp.Server;

/// <summary>A server-sent-events response: <c>event:</c>/<c>data:</c> frames flushed as they are written.</summary>
internal sealed class Sse(HttpResponse response)
{
    public static async Task<Sse> StartAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync(context.RequestAborted);
        return new Sse(response);
    }

    public Task DataAsync(JsonNode data, CancellationToken ct) => WriteAsync(null, ApiJson.Write(data), ct);

    public Task EventAsync(string name, JsonNode data, CancellationToken ct) => WriteAsync(name, ApiJson.Write(data), ct);

    public Task DoneAsync(CancellationToken ct) => WriteAsync(null, "[DONE]", ct);

    private async Task WriteAsync(string? name, string data, CancellationToken ct)
    {
        var frame = new StringBuilder();
        if (name is not null) frame.Append("event: ").Append(name).Append('\n');
        frame.Append("data: ").Append(data).Append("\n\n");
        await response.WriteAsync(frame.ToString(), ct);
        await response.Body.FlushAsync(ct);
    }
}
