namespace KimiSharp.Model.Tests;

internal static class LogitComparison
{
    /// <summary>The largest |a − b| over all entries, and the largest |a| it is measured against.</summary>
    public static (double MaxDiff, double MaxRef) MaxDifference(float[] reference, float[] other)
    {
        Assert.Equal(reference.Length, other.Length);
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(reference[i] - other[i]));
            maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
        }
        return (maxDiff, maxRef);
    }
}
