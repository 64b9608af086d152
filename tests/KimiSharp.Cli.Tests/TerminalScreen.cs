using System.Text;

namespace KimiSharp.Cli.Tests;

/// <summary>
/// What a terminal shows after some output: the few controls the CLI writes (CR, LF, backspace, cursor up/down/column,
/// erase to end of screen or line, SGR colours ignored) applied to a grid of the given width, with xterm's deferred
/// wrap. Enough to check what a person would see after the chat has rewritten parts of the screen.
/// </summary>
internal sealed class TerminalScreen(int width)
{
    private readonly List<StringBuilder> _rows = [new()];
    private int _row, _column;

    /// <summary>The rows, trailing spaces and trailing empty rows removed.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            var lines = _rows.Select(r => r.ToString().TrimEnd()).ToList();
            while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
            return lines;
        }
    }

    public static IReadOnlyList<string> Render(string output, int width)
    {
        var screen = new TerminalScreen(width);
        screen.Write(output);
        return screen.Lines;
    }

    private StringBuilder Row(int row)
    {
        while (_rows.Count <= row) _rows.Add(new StringBuilder());
        return _rows[row];
    }

    public void Write(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            switch (c)
            {
                case '\r': _column = 0; break;
                case '\n': _row++; _column = 0; Row(_row); break; // a pty's onlcr: the CLI writes bare LFs
                case '\b': _column = Math.Max(0, _column - 1); break;
                case '\a': break;
                case '\u001b': i = Escape(text, i); break;
                default:
                    if (char.IsLowSurrogate(c)) break;
                    if (_column >= width) { _row++; _column = 0; }
                    var row = Row(_row);
                    while (row.Length <= _column) row.Append(' ');
                    row[_column++] = c;
                    break;
            }
        }
    }

    /// <summary>Applies the escape sequence starting at <paramref name="at"/>; returns the index of its last character.</summary>
    private int Escape(string text, int at)
    {
        if (at + 1 >= text.Length) return at;
        if (text[at + 1] != '[') return at + 1; // ESC = , ESC 7 and the like: nothing to draw
        int i = at + 2;
        bool privateMode = i < text.Length && text[i] == '?';
        if (privateMode) i++;
        int start = i;
        while (i < text.Length && (char.IsDigit(text[i]) || text[i] == ';')) i++;
        if (i >= text.Length) return i - 1;
        string[] parts = text[start..i].Split(';');
        int n = parts[0].Length == 0 ? 0 : int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
        if (privateMode) return i;
        switch (text[i])
        {
            case 'A': _row = Math.Max(0, _row - Math.Max(1, n)); break; // ESC[0A moves one row, as terminals do
            case 'B': _row += Math.Max(1, n); Row(_row); break;
            case 'C': _column = Math.Min(width, _column + Math.Max(1, n)); break;
            case 'D': _column = Math.Max(0, _column - Math.Max(1, n)); break;
            case 'G': _column = Math.Max(0, n - 1); break;
            case 'J' when n == 0:
                ClearLine(_row, _column);
                for (int r = _row + 1; r < _rows.Count; r++) _rows[r].Clear();
                break;
            case 'K': ClearLine(_row, n == 2 ? 0 : _column); break;
        }
        return i;
    }

    private void ClearLine(int row, int from)
    {
        var line = Row(row);
        if (from == 0) line.Clear();
        else if (line.Length > from) line.Length = from;
    }
}
