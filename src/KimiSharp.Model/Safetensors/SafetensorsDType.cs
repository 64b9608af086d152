namespace KimiSharp.Model.Safetensors;

/// <summary>Element types a safetensors header may name (the subset K2-family checkpoints use).</summary>
public enum SafetensorsDType
{
    F32,
    F16,
    BF16,
    I32,
    I64,
    F8_E4M3,
    I8,
    U8,
}

public static class SafetensorsDTypes
{
    public static int SizeOf(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.I64 => 8,
        SafetensorsDType.F8_E4M3 or SafetensorsDType.I8 or SafetensorsDType.U8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The header spelling of <paramref name="dtype"/>.</summary>
    public static string Name(SafetensorsDType dtype) => dtype.ToString();

    public static bool TryParse(string name, out SafetensorsDType dtype)
    {
        switch (name)
        {
            case "F32": dtype = SafetensorsDType.F32; return true;
            case "F16": dtype = SafetensorsDType.F16; return true;
            case "BF16": dtype = SafetensorsDType.BF16; return true;
            case "I32": dtype = SafetensorsDType.I32; return true;
            case "I64": dtype = SafetensorsDType.I64; return true;
            case "F8_E4M3": dtype = SafetensorsDType.F8_E4M3; return true;
            case "I8": dtype = SafetensorsDType.I8; return true;
            case "U8": dtype = SafetensorsDType.U8; return true;
            default: dtype = default; return false;
        }
    }
}
