using KimiSharp.Model.Layers;

namespace KimiSharp.Model;

/// <summary>Language-modelling quality of a model on a token stream.</summary>
public static class Evaluation
{
    /// <summary>
    /// Mean negative log-likelihood (nats per token) of predicting each token from the ones before it, over
    /// non-overlapping windows of at most <paramref name="window"/> tokens. Perplexity is exp of it.
    /// </summary>
    public static double MeanNegativeLogLikelihood(KimiModel model, ReadOnlySpan<int> tokens, int window = 512, CancellationToken cancellationToken = default)
    {
        int vocab = model.Config.VocabSize;
        window = Math.Min(window, model.Config.MaxPositionEmbeddings);
        double total = 0;
        long count = 0;
        for (int start = 0; start + 1 < tokens.Length; start += window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int length = Math.Min(window, tokens.Length - start);
            if (length < 2) break;
            var chunk = tokens.Slice(start, length);
            var logits = new float[(long)length * vocab];
            model.Forward(chunk, model.CreateCache(length), logits);
            for (int t = 0; t + 1 < length; t++)
            {
                var row = logits.AsSpan(t * vocab, vocab);
                float max = float.NegativeInfinity;
                foreach (float v in row) max = Math.Max(max, v);
                double sum = 0;
                foreach (float v in row) sum += Math.Exp(v - max);
                total += max + Math.Log(sum) - row[chunk[t + 1]];
                count++;
            }
        }
        return count == 0 ? double.NaN : total / count;
    }
}
