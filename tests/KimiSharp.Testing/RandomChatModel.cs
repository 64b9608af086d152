using KimiSharp.Model.Checkpoints;
using KimiSharp.Tokens;

namespace KimiSharp.Testing;

/// <summary>
/// A chat-capable model folder with random weights: a byte-level Kimi tokenizer (256 byte ranks plus Kimi's special
/// tokens) and a random K2-architecture checkpoint sized to it. Its answers are noise, but every part of the
/// serving path (template, tokenizer, engine, parser, constrained decoding, APIs) runs for real on it.
/// </summary>
public static class RandomChatModel
{
    public static void Write(string directory, RandomCheckpointOptions? shape = null)
    {
        int vocab = TokenizerFiles.Write(directory, TokenizerFiles.ByteRanks());
        RandomCheckpoint.Write(directory, (shape ?? new RandomCheckpointOptions
        {
            HiddenSize = 64, NumHiddenLayers = 2, MaxPositionEmbeddings = 4096, Format = CheckpointFormat.Int4,
        }) with { VocabSize = vocab });
    }
}
