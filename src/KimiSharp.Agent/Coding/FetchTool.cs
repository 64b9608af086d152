using System.Net;
using System.Text;

namespace KimiSharp.Agent.Coding;

/// <summary>
/// fetch: HTTP GET of a URL whose host is loopback or on <see cref="CodingToolOptions.FetchAllowedHosts"/>; every
/// redirect hop is checked against the same list. Reads at most <see cref="CodingToolOptions.FetchMaxBytes"/>.
/// </summary>
public sealed class FetchTool(CodingToolOptions options) : BuiltinFunction(
    "fetch",
    "HTTP GET a URL and return the status, content type and body text. Only localhost and allowed hosts can be reached.",
    """
    {
      "type": "object",
      "properties": {
        "url": { "type": "string", "minLength": 1, "description": "http:// or https:// URL." }
      },
      "required": ["url"],
      "additionalProperties": false
    }
    """,
    readOnly: true, needsApproval: false)
{
    private const int MaxRedirects = 5;

    // No proxy (a proxy would carry a loopback request off the machine) and redirects followed by hand so that
    // each hop is checked against the allow-list.
    private static readonly HttpClient Client = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>True when fetch may contact <paramref name="uri"/>'s host under these options.</summary>
    public static bool IsAllowed(Uri uri, CodingToolOptions options)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) return false;
        string host = uri.IdnHost;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
        if (IPAddress.TryParse(host.Trim('[', ']'), out IPAddress? address) && IPAddress.IsLoopback(address)) return true;
        return options.FetchAllowedHosts.Any(allowed => string.Equals(allowed, host, StringComparison.OrdinalIgnoreCase));
    }

    protected override async ValueTask<string> RunAsync(ToolArguments arguments, CancellationToken cancellationToken)
    {
        string url = arguments.GetString("url");
        if (!Uri.TryCreate(url, UriKind.Absolute, out Uri? uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new ToolFailureException($"'{Clip(url)}' is not an http:// or https:// URL");

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.FetchTimeout);
        try
        {
            for (int hop = 0; ; hop++)
            {
                if (!IsAllowed(uri, options))
                    throw new ToolFailureException(
                        $"fetching from '{uri.Host}' is not allowed; allowed hosts: localhost{string.Concat(options.FetchAllowedHosts.Select(h => ", " + h))}");
                using var request = new HttpRequestMessage(HttpMethod.Get, uri);
                using HttpResponseMessage response = await Client
                    .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
                if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
                {
                    if (hop == MaxRedirects) throw new ToolFailureException($"more than {MaxRedirects} redirects");
                    uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
                    continue;
                }
                return await RenderAsync(response, deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ToolFailureException($"no complete response within {options.FetchTimeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException e)
        {
            throw new ToolFailureException($"request failed: {e.Message}");
        }
    }

    private async Task<string> RenderAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using Stream stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        byte[] buffer = new byte[options.FetchMaxBytes + 1];
        int total = 0;
        int read;
        while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false)) > 0)
            total += read;
        bool clipped = total > options.FetchMaxBytes;
        int kept = Math.Min(total, options.FetchMaxBytes);

        string status = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
        string contentType = response.Content.Headers.ContentType?.ToString() ?? "(none)";
        string body = TextFiles.LooksBinary(buffer.AsSpan(0, kept))
            ? $"(binary content, {kept} bytes, not shown)"
            : Encoding.UTF8.GetString(buffer, 0, kept);
        string text = $"{status}\ncontent-type: {contentType}\n\n{body}";
        if (clipped) text += $"\n[body clipped at {options.FetchMaxBytes} bytes]";
        if (!response.IsSuccessStatusCode) throw new ToolFailureException(TextFiles.Clip(text, options.MaxOutputChars));
        return TextFiles.Clip(text, options.MaxOutputChars);
    }

    private static string Clip(string text) => text.Length > 200 ? text[..200] + "…" : text;
}
