namespace KimiSharp.Training.Optimizers;

/// <summary>
/// An optimizer over a fixed list of <see cref="Parameter"/>s. <see cref="Step"/> reads each parameter's
/// <see cref="Parameter.Grad"/> (already accumulated by the caller; the optimizer does not zero it) and updates
/// <see cref="Parameter.Data"/> in place. Every optimizer here is deterministic: the same parameters, gradients and
/// learning rates give bit-identical results on the same machine, independent of thread scheduling.
/// </summary>
public interface IOptimizer
{
    /// <summary>The parameters this optimizer updates, in the order their state is saved.</summary>
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Number of completed <see cref="Step"/> calls (restored by <see cref="LoadState"/>).</summary>
    long StepCount { get; }

    /// <summary>Applies one update with the given learning rate.</summary>
    void Step(float learningRate);

    /// <summary>
    /// Writes the optimizer state (step count and moment buffers, raw float32 bits) so that
    /// <see cref="LoadState"/> followed by <see cref="Step"/> reproduces an uninterrupted run bit for bit.
    /// Parameter values are not part of the state; save them with the model checkpoint.
    /// </summary>
    void SaveState(Stream stream);

    /// <summary>Restores state written by <see cref="SaveState"/> for the same parameter list (names and sizes are checked).</summary>
    void LoadState(Stream stream);
}

/// <summary>The saved state does not match this optimizer (different kind, parameter names or sizes), or is truncated.</summary>
public sealed class OptimizerStateException(string message) : Exception(message);

/// <summary>Binary helpers for optimizer state: little-endian, raw float32 bits, named buffers checked on load.</summary>
internal static class OptimizerStateIO
{
    private const uint Magic = 0x4B534F50; // "KSOP"
    private const int Version = 1;

    public static BinaryWriter Begin(Stream stream, string kind, long step)
    {
        var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(Version);
        w.Write(kind);
        w.Write(step);
        return w;
    }

    public static BinaryReader Begin(Stream stream, string kind, out long step)
    {
        var r = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        try
        {
            if (r.ReadUInt32() != Magic) throw new OptimizerStateException("optimizer state: bad magic number");
            int version = r.ReadInt32();
            if (version != Version) throw new OptimizerStateException($"optimizer state: version {version} is not supported ({Version})");
            string k = r.ReadString();
            if (k != kind) throw new OptimizerStateException($"optimizer state: written by '{k}', loading into '{kind}'");
            step = r.ReadInt64();
            return r;
        }
        catch (EndOfStreamException)
        {
            r.Dispose();
            throw new OptimizerStateException("optimizer state: truncated header");
        }
    }

    public static void WriteBuffer(BinaryWriter w, string name, float[] buffer)
    {
        w.Write(name);
        w.Write(buffer.LongLength);
        w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan()));
    }

    public static void ReadBuffer(BinaryReader r, string name, float[] buffer)
    {
        try
        {
            string n = r.ReadString();
            if (n != name) throw new OptimizerStateException($"optimizer state: expected buffer '{name}', found '{n}'");
            long length = r.ReadInt64();
            if (length != buffer.LongLength)
                throw new OptimizerStateException($"optimizer state: buffer '{name}' has {length} values, expected {buffer.LongLength}");
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan());
            r.BaseStream.ReadExactly(bytes);
        }
        catch (EndOfStreamException)
        {
            throw new OptimizerStateException($"optimizer state: truncated in buffer '{name}'");
        }
    }
}
