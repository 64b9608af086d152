using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace KimiSharp.Server.Protocol;

/// <summary>Source-generated readers for every request body (no reflection at run time).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(ContentPart))]
[JsonSerializable(typeof(NamedToolChoice))]
[JsonSerializable(typeof(MessagesRequest))]
[JsonSerializable(typeof(ContentBlock))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class ProtocolJsonContext : JsonSerializerContext;

/// <summary>
/// Reads a request body within a size limit, checks it (UTF-8, syntax, depth, duplicate keys, unpaired surrogates)
/// and deserializes it into a typed request; every failure is an <see cref="ApiException"/> naming the field.
/// </summary>
internal static class ProtocolJson
{
    /// <summary>Deeper JSON is refused: no legitimate request nests further, and deep nesting costs stack.</summary>
    public const int MaxDepth = 64;

    /// <summary>The body, at most <paramref name="limitBytes"/> (413 beyond), read without buffering more than that.</summary>
    public static async Task<byte[]> ReadBodyAsync(HttpRequest request, int limitBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limitBytes) throw TooLarge(request.Path, limitBytes);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(limitBytes + 1, (int?)request.ContentLength + 1 ?? 16 * 1024));
        int length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > limitBytes) throw TooLarge(request.Path, limitBytes);
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)limitBytes + 1, 2L * buffer.Length));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0) break;
                length += read;
                if (length > limitBytes) throw TooLarge(request.Path, limitBytes);
            }
            return buffer.AsSpan(0, length).ToArray();
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    private static ApiException TooLarge(PathString path, int limitBytes) =>
        new(413, "invalid_request_error", $"the request body is larger than {limitBytes:N0} bytes, the limit of {path} (kimi serve --max-body-mb raises it)", code: "request_too_large");

    /// <summary>Checks <paramref name="body"/> and deserializes it as <typeparamref name="T"/>.</summary>
    public static T Parse<T>(byte[] body, JsonTypeInfo<T> typeInfo) where T : class
    {
        if (body.Length == 0) throw ApiException.BadRequest("the request body is empty; send a JSON object");
        if (!System.Text.Unicode.Utf8.IsValid(body))
            throw ApiException.BadRequest($"the request body is not valid UTF-8 (first bad byte at offset {FirstInvalidUtf8(body)})");
        Check(body);
        T? value;
        try { value = JsonSerializer.Deserialize(body, typeInfo); }
        catch (JsonException e) { throw WrongType(e, typeof(T), ""); }
        return value ?? throw ApiException.BadRequest("the request body must be a JSON object");
    }

    /// <summary>Deserializes a part of the body (a union member) as <typeparamref name="T"/>; <paramref name="path"/> names it in errors.</summary>
    public static T Parse<T>(JsonElement element, JsonTypeInfo<T> typeInfo, string path) where T : class
    {
        if (element.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"{path} must be an object", path);
        try { return element.Deserialize(typeInfo)!; }
        catch (JsonException e) { throw WrongType(e, typeof(T), path); }
    }

    /// <summary>A copy as a mutable node, for the chat template and the constraint compiler.</summary>
    public static JsonNode? ToNode(JsonElement element) => JsonSerializer.SerializeToNode(element, ProtocolJsonContext.Default.JsonElement);

    private static int FirstInvalidUtf8(byte[] body)
    {
        var chars = new char[1024];
        int offset = 0;
        while (true)
        {
            var status = System.Text.Unicode.Utf8.ToUtf16(body.AsSpan(offset), chars, out int read, out _, replaceInvalidSequences: false);
            offset += read;
            if (status != System.Buffers.OperationStatus.DestinationTooSmall) return offset;
        }
    }

    /// <summary>
    /// One pass over the tokens: syntax and depth (the reader's), duplicate keys and unpaired surrogates in escapes
    /// (which .NET would otherwise report as "An item with the same key has already been added" or an
    /// InvalidOperationException far from the request).
    /// </summary>
    private static void Check(byte[] body)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = MaxDepth });
        // One frame per depth, reused by sibling containers, so the pass allocates per depth, not per object.
        var frames = new List<Frame>();
        int depth = 0;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        Advance(frames, depth);
                        if (depth == frames.Count) frames.Add(new Frame());
                        frames[depth++].Reset(reader.TokenType == JsonTokenType.StartObject);
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        depth--;
                        break;
                    case JsonTokenType.PropertyName:
                        string name = ReadString(ref reader, frames, depth);
                        var frame = frames[depth - 1];
                        if (!frame.Names.Add(name))
                            throw ApiException.BadRequest($"the key '{name}' appears twice in {Describe(frames, depth, withPending: false)}", Path(frames, depth, withPending: false));
                        frame.Pending = name;
                        break;
                    case JsonTokenType.String:
                        Advance(frames, depth);
                        if (reader.ValueIsEscaped) ReadString(ref reader, frames, depth);
                        break;
                    default:
                        Advance(frames, depth);
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            string detail = e.Message.Contains("maximum configured depth", StringComparison.Ordinal)
                ? $"it nests deeper than {MaxDepth} levels"
                : $"{e.Message.Split(" Path:")[0].Split(" LineNumber:")[0].TrimEnd(' ', '.')} (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})";
            throw ApiException.BadRequest($"the request body is not valid JSON: {detail}");
        }
    }

    private static string ReadString(ref Utf8JsonReader reader, List<Frame> frames, int depth)
    {
        try { return reader.GetString()!; }
        catch (InvalidOperationException)
        {
            string path = Path(frames, depth, withPending: reader.TokenType != JsonTokenType.PropertyName);
            throw ApiException.BadRequest($"a string in {(path.Length == 0 ? "the request body" : path)} has an unpaired UTF-16 surrogate escape (\\uD800–\\uDFFF alone)", path.Length == 0 ? null : path);
        }
    }

    /// <summary>An open object or array: the keys seen so far (objects), the last key or index (for error paths).</summary>
    private sealed class Frame
    {
        public bool IsObject { get; private set; }
        public HashSet<string> Names { get; } = new(StringComparer.Ordinal);
        public string? Pending { get; set; }
        public int Index { get; set; }

        public void Reset(bool isObject)
        {
            IsObject = isObject;
            Names.Clear();
            Pending = null;
            Index = -1;
        }
    }

    private static void Advance(List<Frame> frames, int depth)
    {
        if (depth > 0 && !frames[depth - 1].IsObject) frames[depth - 1].Index++;
    }

    /// <summary>The path of the value being read, as clients write it: messages[0].content.</summary>
    private static string Path(List<Frame> frames, int depth, bool withPending)
    {
        var path = new StringBuilder();
        for (int i = 0; i < depth; i++)
        {
            var f = frames[i];
            if (i == depth - 1 && !withPending) break;
            if (f.IsObject)
            {
                if (f.Pending is null) continue;
                if (path.Length > 0) path.Append('.');
                path.Append(f.Pending);
            }
            else if (f.Index >= 0) path.Append('[').Append(f.Index).Append(']');
        }
        return path.ToString();
    }

    private static string Describe(List<Frame> frames, int depth, bool withPending)
    {
        string path = Path(frames, depth, withPending);
        return path.Length == 0 ? "the request body" : path;
    }

    /// <summary>A type error from the deserializer, as "PATH must be KIND", with the kind read off the request type.</summary>
    private static ApiException WrongType(JsonException e, Type root, string prefix)
    {
        var segments = Segments(e.Path);
        string path = prefix;
        foreach (var s in segments) path = s is int i ? $"{path}[{i}]" : path.Length == 0 ? (string)s : $"{path}.{s}";
        if (path.Length == 0) return ApiException.BadRequest($"the request body must be a JSON object");
        string? expected = Expected(root, segments);
        return ApiException.BadRequest(expected is null ? $"{path} has the wrong type" : $"{path} must be {expected}", path);
    }

    private static List<object> Segments(string? jsonPath)
    {
        // $.a.b[0]['c.d'] → a, b, 0, c.d
        var segments = new List<object>();
        if (string.IsNullOrEmpty(jsonPath)) return segments;
        int p = jsonPath[0] == '$' ? 1 : 0;
        while (p < jsonPath.Length)
        {
            if (jsonPath[p] == '.')
            {
                int end = p + 1;
                while (end < jsonPath.Length && jsonPath[end] is not ('.' or '[')) end++;
                segments.Add(jsonPath[(p + 1)..end]);
                p = end;
            }
            else if (jsonPath.AsSpan(p).StartsWith("['"))
            {
                int end = jsonPath.IndexOf("']", p + 2, StringComparison.Ordinal);
                if (end < 0) break;
                segments.Add(jsonPath[(p + 2)..end]);
                p = end + 2;
            }
            else if (jsonPath[p] == '[')
            {
                int end = jsonPath.IndexOf(']', p);
                if (end < 0 || !int.TryParse(jsonPath.AsSpan(p + 1, end - p - 1), NumberStyles.None, CultureInfo.InvariantCulture, out int index)) break;
                segments.Add(index);
                p = end + 1;
            }
            else break;
        }
        return segments;
    }

    private static string? Expected(Type type, List<object> segments)
    {
        foreach (var segment in segments)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            if (segment is int)
            {
                if (!type.IsGenericType || type.GetGenericTypeDefinition() != typeof(List<>)) return null;
                type = type.GetGenericArguments()[0];
                continue;
            }
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
            {
                type = type.GetGenericArguments()[1];
                continue;
            }
            var info = ProtocolJsonContext.Default.GetTypeInfo(type);
            var property = info?.Properties.FirstOrDefault(p => p.Name == (string)segment);
            if (property is null) return null;
            type = property.PropertyType;
        }
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string)) return "a string";
        if (type == typeof(bool)) return "true or false";
        if (type == typeof(double)) return "a number";
        if (type == typeof(long) || type == typeof(int)) return "an integer";
        if (type == typeof(JsonElement)) return null;
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>)) return "an array";
        return "an object";
    }
}
