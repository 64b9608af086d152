using System.Text;
using System.Text.Json;

namespace KimiSharp.Training.Tokenizer;

/// <summary>Streams training text from files for <see cref="BpeTrainer"/> (lazily; nothing is read until enumerated).</summary>
public static class TrainingTexts
{
    /// <summary>
    /// The contents of UTF-8 text files, each cut into chunks of about <paramref name="chunkChars"/> characters. A chunk
    /// ends right after a line feed that is followed by a non-whitespace character, a place where Kimi's
    /// pre-tokenization always has a piece boundary, so chunking does not change the pieces (a file with no such place
    /// is yielded whole).
    /// </summary>
    public static IEnumerable<string> ReadTextFiles(IEnumerable<string> paths, int chunkChars = 1 << 20)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkChars, 1);
        return Iterate(paths, chunkChars);

        static IEnumerable<string> Iterate(IEnumerable<string> paths, int chunkChars)
        {
            foreach (var path in paths)
            {
                using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
                var pending = new StringBuilder();
                var buffer = new char[Math.Min(chunkChars, 1 << 16)];
                int read;
                while ((read = reader.Read(buffer, 0, buffer.Length)) > 0)
                {
                    pending.Append(buffer, 0, read);
                    if (pending.Length >= chunkChars)
                    {
                        int cut = LastCut(pending);
                        if (cut > 0)
                        {
                            yield return pending.ToString(0, cut);
                            pending.Remove(0, cut);
                        }
                    }
                }

                if (pending.Length > 0)
                {
                    yield return pending.ToString();
                }
            }
        }
    }

    /// <summary>
    /// One text per line of JSON-lines files: the string property <paramref name="field"/> of each object (lines where it
    /// is missing or not a string are skipped; blank lines too). A line that is not JSON throws
    /// <see cref="FormatException"/> naming the file and line.
    /// </summary>
    public static IEnumerable<string> ReadJsonLines(IEnumerable<string> paths, string field = "text")
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentException.ThrowIfNullOrEmpty(field);
        return Iterate(paths, field);

        static IEnumerable<string> Iterate(IEnumerable<string> paths, string field)
        {
            foreach (var path in paths)
            {
                int lineNumber = 0;
                foreach (var line in File.ReadLines(path, Encoding.UTF8))
                {
                    lineNumber++;
                    if (string.IsNullOrWhiteSpace(line))
                    {
                        continue;
                    }

                    string? text;
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        text = doc.RootElement.ValueKind == JsonValueKind.Object &&
                               doc.RootElement.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String
                            ? value.GetString()
                            : null;
                    }
                    catch (JsonException e)
                    {
                        throw new FormatException($"{path}:{lineNumber}: not a JSON value ({e.Message}).", e);
                    }

                    if (!string.IsNullOrEmpty(text))
                    {
                        yield return text;
                    }
                }
            }
        }
    }

    /// <summary>Index just past the last '\n' followed by non-whitespace (0: none).</summary>
    private static int LastCut(StringBuilder text)
    {
        for (int i = text.Length - 2; i >= 0; i--)
        {
            if (text[i] == '\n' && !char.IsWhiteSpace(text[i + 1]) && !char.IsLowSurrogate(text[i + 1]))
            {
                return i + 1;
            }
        }

        return 0;
    }
}
