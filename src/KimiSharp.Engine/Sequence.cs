using System.Threading.Channels;
using KimiSharp.Tokens.Parsing;
using KimiSharp.Model.Layers;

namespace KimiSharp.Engine;

/// <summary>
/// One request inside the engine: its prompt and options, its KV cache while it runs, what it has generated, and the
/// channel its events go out on.
/// </summary>
internal sealed class Sequence(int[] prompt, GenerationOptions options, int reservedTokens, long reservedBytes,
    ChannelWriter<GenerationEvent> writer, int vocab)
{
    private volatile bool _cancelled;
    public int[] Prompt { get; } = prompt;
    public GenerationOptions Options { get; } = options;
    public int ReservedTokens { get; } = reservedTokens;
    public long ReservedBytes { get; } = reservedBytes;
    public Sampler Sampler { get; } = new(options, vocab);
    public float[] Logits { get; } = new float[vocab];
    public List<int> Generated { get; } = [];
    public KvCache? Cache { get; set; }
    public bool PromptDone { get; set; }
    public bool PrefixLookedUp { get; set; }
    /// <summary>The tokens this step feeds: a prompt chunk, or <see cref="NextToken"/>.</summary>
    public ReadOnlyMemory<int> StepTokens { get; set; }
    public int[] NextToken { get; } = new int[1];
    /// <summary>Prompt positions whose input embeddings are given (image features), or null.</summary>
    public PromptEmbeddings? PromptEmbeddings { get; init; }
    /// <summary>This step's share of <see cref="PromptEmbeddings"/>, positions relative to <see cref="StepTokens"/>.</summary>
    public Model.EmbeddingPatch? StepEmbeddings { get; set; }
    public int CachedTokens { get; set; }
    public int LastToken { get; set; }
    public bool IsDone { get; private set; }
    public bool IsCancelled => _cancelled;
    public Exception? Error { get; private set; }

    public void Cancel() => _cancelled = true;
    public void Post(GenerationEvent e) => writer.TryWrite(e);

    public void Finish(FinishReason reason)
    {
        if (IsDone) return;
        IsDone = true;
        writer.TryWrite(new GenerationFinished(reason, Prompt.Length, Generated.Count, CachedTokens));
        writer.TryComplete();
    }

    public void Fail(Exception e)
    {
        if (IsDone) return;
        IsDone = true;
        Error = e;
        writer.TryComplete(e);
    }
}
