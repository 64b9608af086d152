using System.Text;

namespace KimiSharp.Training.Tests.Tokenizer;

/// <summary>Generated mixed-language training text (English, Chinese, code, emoji, chat markers), seeded.</summary>
internal static class TrainingCorpus
{
    private static readonly string[] English =
    [
        "the", "the", "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "model", "token",
        "training", "language", "world", "hello", "people", "because", "about", "would", "there", "their", "which",
        "Kimi", "data", "learning", "expert", "mixture", "attention", "we", "they", "can't", "don't", "it's", "I'm",
    ];

    private static readonly string[] Chinese =
    [
        "我们", "你好", "世界", "模型", "训练", "语言", "数据", "学习", "中国", "今天", "天气", "非常", "好", "的", "是", "在",
        "注意力", "专家", "混合", "人工智能",
    ];

    private static readonly string[] CodeLines =
    [
        "public static int Add(int a, int b) => a + b;",
        "def forward(self, x):\n    return self.linear(x)",
        "for (int i = 0; i < n; i++) { sum += values[i]; }",
        "if (x == null) throw new ArgumentNullException(nameof(x));",
        "import numpy as np\nprint(np.arange(10).sum())",
        "const result = await fetch(url).then(r => r.json());",
        "fn main() { println!(\"{}\", 42); }",
    ];

    private static readonly string[] Emoji = ["😀", "🚀", "👍", "🎉", "❤️", "🙂", "🤖", "👩‍💻"];

    private static readonly string[] Markers = ["<|im_user|>", "<|im_assistant|>", "<|im_middle|>", "<|im_end|>", "<think>", "</think>"];

    /// <summary><paramref name="count"/> documents of a few sentences each.</summary>
    public static List<string> Generate(int seed, int count, bool withMarkers = true)
    {
        var random = new Random(seed);
        var texts = new List<string>(count);
        var sb = new StringBuilder();
        for (int d = 0; d < count; d++)
        {
            sb.Clear();
            int parts = random.Next(2, 7);
            for (int p = 0; p < parts; p++)
            {
                switch (random.Next(6))
                {
                    case 0:
                    case 1:
                        AppendEnglish(sb, random);
                        break;
                    case 2:
                        for (int i = random.Next(3, 12); i > 0; i--)
                        {
                            sb.Append(Chinese[random.Next(Chinese.Length)]);
                        }

                        sb.Append(random.Next(2) == 0 ? "。" : "，");
                        break;
                    case 3:
                        sb.Append(CodeLines[random.Next(CodeLines.Length)]).Append('\n');
                        break;
                    case 4:
                        AppendEnglish(sb, random);
                        sb.Append(' ').Append(Emoji[random.Next(Emoji.Length)]);
                        break;
                    default:
                        sb.Append(random.Next(100_000)).Append(' ').Append(Emoji[random.Next(Emoji.Length)]).Append(Emoji[random.Next(Emoji.Length)]);
                        break;
                }

                if (withMarkers && random.Next(4) == 0)
                {
                    sb.Append(Markers[random.Next(Markers.Length)]);
                }

                sb.Append(random.Next(3) == 0 ? "\n\n" : " ");
            }

            texts.Add(sb.ToString());
        }

        return texts;
    }

    /// <summary>Texts the trainer never saw: other words, scripts and odd whitespace as well as the corpus's style.</summary>
    public static List<string> HeldOut()
    {
        var texts = Generate(seed: 987_654, count: 40);
        texts.AddRange(
        [
            "Zebras quickly vex jumping wizards! Ünïcödé façade, naïve café — “quotes” … ",
            "東京は日本の首都です。한국어 텍스트도 있습니다. Привет, мир! مرحبا بالعالم",
            "𠀀𠀁 supplementary Han 𪜀 and 𝐀𝐁𝐂 math letters 👨‍👩‍👧‍👦 family",
            "\t\ttabs\r\nand CRLF\r\n\r\n   trailing spaces   ",
            "x = {\"key\": [1, 2, 3], 'k2': None}  # comment\n\tindent()\n",
            "<|im_user|>user<|im_middle|>你好，Kimi！<|im_end|><|im_assistant|>assistant<|im_middle|><think>嗯</think>Hi 👋<|im_end|>",
            "1234567890 3.14159 1e-9 0xDEADBEEF",
            "",
            " ",
            "a",
        ]);
        return texts;
    }

    private static void AppendEnglish(StringBuilder sb, Random random)
    {
        int words = random.Next(4, 14);
        for (int i = 0; i < words; i++)
        {
            var word = English[random.Next(English.Length)];
            if (i == 0)
            {
                word = char.ToUpperInvariant(word[0]) + word[1..];
            }
            else
            {
                sb.Append(' ');
            }

            sb.Append(word);
        }

        sb.Append(random.Next(4) == 0 ? "?" : ".");
    }
}
