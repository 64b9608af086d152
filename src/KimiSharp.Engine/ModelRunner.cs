using KimiSharp.Tokens.Parsing;
using KimiSharp.Model;
using Microsoft.Extensions.Logging;

namespace KimiSharp.Engine;

/// <summary>
/// Computes a step the <see cref="Scheduler"/> planned: one batched forward pass over every scheduled sequence's
/// tokens, then a sample for each sequence whose prompt is done. Buffers are kept between steps, so a running batch
/// allocates nothing per token. Lives on the engine's loop thread.
/// </summary>
internal sealed class ModelRunner(KimiModel model, ILogger logger)
{
    private readonly BatchWorkspace _workspace = new();
    private ForwardSegment[] _segments = [];
    private float[] _logits = [];

    public void Run(List<Sequence> batch)
    {
        if (batch.Count == 0) return;
        int vocab = model.Config.VocabSize;
        if (_segments.Length < batch.Count) _segments = new ForwardSegment[Math.Max(batch.Count, 2 * _segments.Length)];
        if (_logits.Length < (long)batch.Count * vocab) _logits = new float[(long)Math.Max(batch.Count, 2 * _logits.Length / vocab) * vocab];
        for (int i = 0; i < batch.Count; i++) _segments[i] = new ForwardSegment(batch[i].StepTokens, batch[i].Cache!) { Embeddings = batch[i].StepEmbeddings };
        try
        {
            model.Forward(_segments.AsSpan(0, batch.Count), _logits, _workspace);
        }
        catch (Exception e)
        {
            // Inputs are validated on admission, so a failure here is the engine's own: every sequence in the pass
            // fails rather than continuing from a cache in an unknown state.
            logger.LogError(e, "generation failed");
            foreach (var s in batch) s.Fail(e);
            return;
        }
        finally
        {
            Array.Clear(_segments, 0, batch.Count); // hold no cache between steps
        }

        for (int i = 0; i < batch.Count; i++)
        {
            var s = batch[i];
            try
            {
                _logits.AsSpan(i * vocab, vocab).CopyTo(s.Logits);
                if (!s.PromptDone)
                {
                    if (s.Cache!.Length < s.Prompt.Length) continue; // more prompt chunks to go
                    s.PromptDone = true;
                    s.Post(new PromptProcessed(s.Prompt.Length, s.CachedTokens));
                }
                SampleNext(s);
            }
            catch (Exception e)
            {
                logger.LogError(e, "sampling failed");
                s.Fail(e);
            }
        }
    }

    private void SampleNext(Sequence s)
    {
        var top = s.Options.TopLogprobs > 0 ? new TokenLogprob[s.Options.TopLogprobs] : null;
        int token = s.Sampler.Sample(s.Logits, out float logprob, top);
        s.Generated.Add(token);
        s.LastToken = token;
        s.Post(new TokenGenerated(token, logprob, top));
        if (s.Options.StopTokens.Contains(token) || s.Options.Constraint?.IsComplete == true) s.Finish(FinishReason.Stop);
        else if (s.Generated.Count >= s.Options.MaxTokens || s.Cache!.Length + 1 >= model.Config.MaxPositionEmbeddings)
            s.Finish(FinishReason.Length);
    }
}
