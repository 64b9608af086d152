using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KimiSharp.Kernels;

/// <summary>Which vector paths the kernels chose on this machine (fixed at startup by the JIT).</summary>
public static class KernelInfo
{
    public static string VectorPath =>
        Vector512.IsHardwareAccelerated ? "Vector512 (AVX-512)" : Vector256.IsHardwareAccelerated ? "Vector256 (AVX2/FMA)" : "portable";

    public static string Describe() =>
        $"kernels {VectorPath}" + (Avx512BW.IsSupported ? ", AVX-512BW int8 dot" : Avx2.IsSupported ? ", AVX2 int8 dot" : "");
}
