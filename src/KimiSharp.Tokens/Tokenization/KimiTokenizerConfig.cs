using System.Globalization;
using System.Text.Json;

namespace KimiSharp.Tokens.Tokenization;

/// <summary>
/// What the tokenizer needs from a Hugging Face <c>tokenizer_config.json</c>: the named special tokens
/// (<c>added_tokens_decoder</c>: id → {content, special}) and the bos/eos/pad/unk token strings.
/// </summary>
public sealed record KimiTokenizerConfig(
    IReadOnlyList<SpecialToken> AddedTokens,
    string? BosToken,
    string? EosToken,
    string? PadToken,
    string? UnkToken)
{
    /// <summary>Reads and validates <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFormatException">The JSON is malformed or has the wrong shape.</exception>
    public static KimiTokenizerConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"tokenizer config '{path}' does not exist.", path);
        }

        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses the JSON text of a <c>tokenizer_config.json</c>.</summary>
    /// <param name="sourceName">Name used in error messages.</param>
    public static KimiTokenizerConfig Parse(ReadOnlySpan<byte> utf8Json, string sourceName = "tokenizer_config.json")
    {
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions
            {
                CommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true,
            });
            doc = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            int? line = e.LineNumber is long l ? (int)l + 1 : null;
            throw new TokenizerFormatException(sourceName, line, $"invalid JSON: {e.Message}", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new TokenizerFormatException(sourceName, null, "the top level must be a JSON object.");
            }

            var added = new List<SpecialToken>();
            if (root.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind != JsonValueKind.Null)
            {
                if (decoder.ValueKind != JsonValueKind.Object)
                {
                    throw new TokenizerFormatException(sourceName, null, "'added_tokens_decoder' must be an object of id → token.");
                }

                foreach (var entry in decoder.EnumerateObject())
                {
                    added.Add(ReadAddedToken(entry, sourceName));
                }
            }

            added.Sort((a, b) => a.Id.CompareTo(b.Id));
            for (int i = 1; i < added.Count; i++)
            {
                if (added[i].Id == added[i - 1].Id)
                {
                    throw new TokenizerFormatException(sourceName, null, $"'added_tokens_decoder' lists id {added[i].Id} twice.");
                }
            }

            return new KimiTokenizerConfig(
                added,
                ReadTokenString(root, "bos_token", sourceName),
                ReadTokenString(root, "eos_token", sourceName),
                ReadTokenString(root, "pad_token", sourceName),
                ReadTokenString(root, "unk_token", sourceName));
        }
    }

    private static SpecialToken ReadAddedToken(JsonProperty entry, string source)
    {
        if (!int.TryParse(entry.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
        {
            throw new TokenizerFormatException(source, null, $"'added_tokens_decoder' key '{entry.Name}' is not a token id.");
        }

        if (entry.Value.ValueKind != JsonValueKind.Object
            || !entry.Value.TryGetProperty("content", out var content)
            || content.ValueKind != JsonValueKind.String
            || string.IsNullOrEmpty(content.GetString()))
        {
            throw new TokenizerFormatException(source, null,
                $"'added_tokens_decoder' entry {id} must be an object with a non-empty string 'content'.");
        }

        // HF's AddedToken defaults 'special' to false.
        bool special = false;
        if (entry.Value.TryGetProperty("special", out var flag))
        {
            special = flag.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new TokenizerFormatException(source, null, $"'added_tokens_decoder' entry {id}: 'special' must be a boolean."),
            };
        }

        return new SpecialToken(id, content.GetString()!, special);
    }

    /// <summary>Reads bos_token etc., which HF writes either as a plain string or as an AddedToken object.</summary>
    private static string? ReadTokenString(JsonElement root, string name, string source)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw new TokenizerFormatException(source, null, $"'{name}' must be a string, an object with 'content', or null."),
        };
    }
}
