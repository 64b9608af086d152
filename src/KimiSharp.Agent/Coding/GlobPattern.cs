using System.Text;
using System.Text.RegularExpressions;

namespace KimiSharp.Agent.Coding;

/// <summary>
/// A glob over '/'-separated relative paths: <c>*</c> (within a name), <c>?</c>, <c>**</c> (any depth),
/// <c>[abc]</c>/<c>[!abc]</c>, <c>{a,b}</c>.
/// </summary>
public sealed class GlobPattern
{
    private readonly Regex _regex;

    public GlobPattern(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length == 0) throw new ToolFailureException("glob pattern must not be empty");
        Pattern = pattern;
        _regex = new Regex("^" + Translate(pattern.Replace('\\', '/').TrimStart('/')) + "$",
            RegexOptions.CultureInvariant | RegexOptions.Singleline, TimeSpan.FromSeconds(1));
    }

    public string Pattern { get; }

    /// <summary>True when the pattern has no '/', i.e. names a file at any depth in grep's filter.</summary>
    public bool IsNameOnly => !Pattern.Contains('/');

    public bool IsMatch(string relativePath) => _regex.IsMatch(relativePath);

    private static string Translate(string glob)
    {
        var regex = new StringBuilder();
        int braces = 0;
        for (int i = 0; i < glob.Length; i++)
        {
            char c = glob[i];
            switch (c)
            {
                case '*' when i + 1 < glob.Length && glob[i + 1] == '*':
                    bool atStart = i == 0 || glob[i - 1] == '/';
                    bool slashAfter = i + 2 < glob.Length && glob[i + 2] == '/';
                    if (atStart && slashAfter)
                    {
                        regex.Append("(?:[^/]*/)*");
                        i += 2;
                    }
                    else
                    {
                        regex.Append(".*");
                        i += 1;
                    }
                    break;
                case '*':
                    regex.Append("[^/]*");
                    break;
                case '?':
                    regex.Append("[^/]");
                    break;
                case '[':
                    int close = glob.IndexOf(']', i + 2);
                    if (close < 0) throw new ToolFailureException($"glob '{glob}' has an unclosed '['");
                    string set = glob[(i + 1)..close];
                    bool negate = set.StartsWith('!') || set.StartsWith('^');
                    if (negate) set = set[1..];
                    regex.Append('[').Append(negate ? "^" : "").Append(set.Replace("\\", "\\\\").Replace("[", "\\[")).Append(']');
                    i = close;
                    break;
                case '{':
                    braces++;
                    regex.Append("(?:");
                    break;
                case '}' when braces > 0:
                    braces--;
                    regex.Append(')');
                    break;
                case ',' when braces > 0:
                    regex.Append('|');
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
        if (braces != 0) throw new ToolFailureException($"glob '{glob}' has an unclosed '{{'");
        return regex.ToString();
    }
}
