using KimiSharp.Kernels;

namespace KimiSharp.Kernels.Tests;

/// <summary>Attention scores and weighted sums against float64 references, and bit for bit across groupings.</summary>
public sealed unsafe class AttentionKernelsTests
{
    private static float[] Random(int n, Random rng)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    private static void Close(double expected, float actual, double magnitude, string what)
    {
        double tolerance = 1e-6 + 1e-5 * magnitude;
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: expected {expected}, got {actual}");
    }

    [Theory]
    // Vectorized widths (multiples of 16) and odd ones (the scalar path); query and position counts around the 4×4 blocks.
    [InlineData(128, 64, 1, 1)]
    [InlineData(128, 64, 4, 4)]
    [InlineData(64, 16, 5, 7)]
    [InlineData(512, 64, 9, 33)]
    [InlineData(32, 0, 3, 17)]
    [InlineData(20, 6, 6, 11)]
    [InlineData(1, 1, 2, 3)]
    public void Scores_match_the_reference_and_do_not_depend_on_grouping(int aDim, int bDim, int queries, int positions)
    {
        var rng = new Random(aDim * 31 + bDim * 7 + queries * 3 + positions);
        // Strided layouts, as in the model: queries and keys sit inside wider rows.
        int qaStride = aDim + 3, qbStride = bDim + 5, kaStride = aDim + 16, kbStride = bDim + 1, scoreStride = positions + 2;
        var qa = Random(queries * qaStride, rng);
        var qb = Random(queries * qbStride + 1, rng);
        var ka = Random(positions * kaStride, rng);
        var kb = Random(positions * kbStride + 1, rng);
        const float scale = 0.37f;
        var all = new float[queries * scoreStride];
        fixed (float* pqa = qa) fixed (float* pqb = qb) fixed (float* pka = ka) fixed (float* pkb = kb) fixed (float* ps = all)
        {
            AttentionKernels.Scores(pqa, qaStride, pqb, qbStride, queries, pka, kaStride, aDim, pkb, kbStride, bDim, positions, scale, ps, scoreStride);
            var one = new float[positions];
            fixed (float* po = one)
                for (int i = 0; i < queries; i++)
                {
                    // One query alone, and then a prefix of the positions: the same bits.
                    AttentionKernels.Scores(pqa + i * qaStride, qaStride, pqb + i * qbStride, qbStride, 1, pka, kaStride, aDim, pkb, kbStride, bDim, positions, scale, po, positions);
                    for (int s = 0; s < positions; s++) Assert.Equal(all[i * scoreStride + s], one[s]);
                    int prefix = Math.Max(1, positions / 2 + 1);
                    AttentionKernels.Scores(pqa + i * qaStride, qaStride, pqb + i * qbStride, qbStride, 1, pka, kaStride, aDim, pkb, kbStride, bDim, prefix, scale, po, positions);
                    for (int s = 0; s < prefix; s++) Assert.Equal(all[i * scoreStride + s], one[s]);
                }
        }
        for (int i = 0; i < queries; i++)
            for (int s = 0; s < positions; s++)
            {
                double expected = 0, magnitude = 0;
                for (int d = 0; d < aDim; d++) { expected += (double)qa[i * qaStride + d] * ka[s * kaStride + d]; magnitude += Math.Abs((double)qa[i * qaStride + d] * ka[s * kaStride + d]); }
                for (int d = 0; d < bDim; d++) { expected += (double)qb[i * qbStride + d] * kb[s * kbStride + d]; magnitude += Math.Abs((double)qb[i * qbStride + d] * kb[s * kbStride + d]); }
                Close(expected * scale, all[i * scoreStride + s], magnitude * scale, $"score q{i} s{s}");
            }
    }

    [Theory]
    [InlineData(128, 1, 1)]
    [InlineData(128, 4, 5)]
    [InlineData(512, 6, 37)]
    [InlineData(80, 3, 9)]
    [InlineData(16, 5, 2)]
    [InlineData(24, 2, 7)]
    [InlineData(3, 4, 4)]
    public void WeightedSum_matches_the_reference_and_ignores_zero_weight_positions(int dim, int queries, int positions)
    {
        var rng = new Random(dim * 13 + queries * 5 + positions);
        int rowStride = dim + 7, probStride = positions + 3, outStride = dim + 1;
        var rows = Random((positions + 2) * rowStride, rng);
        var probs = new float[queries * probStride];
        for (int i = 0; i < probs.Length; i++) probs[i] = (float)rng.NextDouble();
        var output = new float[queries * outStride];
        fixed (float* pr = rows) fixed (float* pp = probs) fixed (float* po = output)
        {
            AttentionKernels.WeightedSum(pp, probStride, queries, pr, rowStride, dim, positions, po, outStride);
            for (int i = 0; i < queries; i++)
                for (int c = 0; c < dim; c++)
                {
                    double expected = 0, magnitude = 0;
                    for (int s = 0; s < positions; s++) { expected += (double)probs[i * probStride + s] * rows[s * rowStride + c]; magnitude += Math.Abs((double)probs[i * probStride + s] * rows[s * rowStride + c]); }
                    Close(expected, output[i * outStride + c], magnitude, $"sum q{i} c{c}");
                }

            // Each query alone, then with two more positions of weight exactly 0 (a causal block's later positions): same bits.
            var single = new float[dim];
            var padded = new float[positions + 2];
            fixed (float* ps = single) fixed (float* pad = padded)
                for (int i = 0; i < queries; i++)
                {
                    AttentionKernels.WeightedSum(pp + i * probStride, probStride, 1, pr, rowStride, dim, positions, ps, dim);
                    for (int c = 0; c < dim; c++) Assert.Equal(output[i * outStride + c], single[c]);
                    Array.Clear(padded);
                    Array.Copy(probs, i * probStride, padded, 0, positions);
                    AttentionKernels.WeightedSum(pad, positions + 2, 1, pr, rowStride, dim, positions + 2, ps, dim);
                    for (int c = 0; c < dim; c++) Assert.Equal(output[i * outStride + c], single[c]);
                }
        }
    }

    [Theory]
    // Wide 64-column chunks, a 16-column tail, the scalar width; 4-query blocks and leftovers; pieces across block edges.
    [InlineData(512, 4, 130, 64)]
    [InlineData(80, 5, 37, 5)]
    [InlineData(20, 3, 29, 4)]
    [InlineData(64, 1, 70, 3)]
    public void A_weighted_sum_continued_piece_by_piece_has_the_bits_of_one_call(int dim, int queries, int positions, int piece)
    {
        var rng = new Random(dim + queries * 13 + positions * 7 + piece);
        int probStride = positions + 3, rowStride = dim + 16, outStride = dim + 2;
        var probs = Random(queries * probStride, rng);
        var rows = Random(positions * rowStride, rng);
        var whole = new float[queries * outStride];
        var pieces = new float[queries * outStride];
        Array.Fill(pieces, 123f); // the first piece overwrites, whatever was there
        fixed (float* pp = probs) fixed (float* pr = rows) fixed (float* pw = whole) fixed (float* pieced = pieces)
        {
            AttentionKernels.WeightedSum(pp, probStride, queries, pr, rowStride, dim, positions, pw, outStride);
            for (int first = 0; first < positions; first += piece)
            {
                int n = Math.Min(piece, positions - first);
                AttentionKernels.WeightedSum(pp + first, probStride, queries, pr + (long)first * rowStride, rowStride, dim, n, pieced, outStride,
                    accumulate: first > 0);
            }
        }
        for (int i = 0; i < queries; i++)
            for (int c = 0; c < dim; c++)
                Assert.Equal(BitConverter.SingleToInt32Bits(whole[i * outStride + c]), BitConverter.SingleToInt32Bits(pieces[i * outStride + c]));
        // And the accumulation is real: continuing from a nonzero start adds to it.
        var again = (float[])pieces.Clone();
        fixed (float* pp = probs) fixed (float* pr = rows) fixed (float* pa = again)
            AttentionKernels.WeightedSum(pp, probStride, queries, pr, rowStride, dim, positions, pa, outStride, accumulate: true);
        Assert.NotEqual(pieces[0], again[0]);
    }
}
