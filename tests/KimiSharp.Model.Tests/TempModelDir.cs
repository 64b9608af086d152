using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KimiSharp.Model.Tests;

/// <summary>A scratch copy of a model folder that tests may corrupt; deleted on dispose.</summary>
public sealed class TempModelDir : IDisposable
{
    public string Path { get; }

    public TempModelDir(string? copyFrom = null)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kimisharp-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
        if (copyFrom is not null)
            foreach (string file in Directory.GetFiles(copyFrom))
                System.IO.File.Copy(file, System.IO.Path.Combine(Path, System.IO.Path.GetFileName(file)));
    }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void EditConfig(Action<JsonObject> edit)
    {
        var config = JsonNode.Parse(System.IO.File.ReadAllText(File("config.json")))!.AsObject();
        edit(config);
        System.IO.File.WriteAllText(File("config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Rewrites the safetensors header of <paramref name="file"/> (the data section is kept as it is).</summary>
    public void EditHeader(string file, Action<JsonObject> edit)
    {
        byte[] bytes = System.IO.File.ReadAllBytes(File(file));
        long headerLength = BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength))!.AsObject();
        edit(header);
        byte[] newHeader = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (newHeader.Length + 7) / 8 * 8;
        using var stream = new FileStream(File(file), FileMode.Create);
        stream.Write(BitConverter.GetBytes((long)padded));
        stream.Write(newHeader);
        for (int i = newHeader.Length; i < padded; i++) stream.WriteByte((byte)' ');
        stream.Write(bytes, 8 + (int)headerLength, bytes.Length - 8 - (int)headerLength);
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
