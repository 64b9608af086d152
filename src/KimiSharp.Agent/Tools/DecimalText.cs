using System.Globalization;

namespace KimiSharp.Agent.Tools;

/// <summary>Invariant, exponent-free rendering of decimals for tool outputs.</summary>
public static class DecimalText
{
    /// <summary>Rounds to at most 6 decimal places (away from zero), trims trailing zeros and a trailing '.', and never yields "-0".</summary>
    public static string Format(decimal value)
    {
        decimal rounded = Math.Round(value, 6, MidpointRounding.AwayFromZero);
        if (rounded == 0m) return "0";
        string text = rounded.ToString(CultureInfo.InvariantCulture);
        if (text.Contains('.'))
        {
            text = text.TrimEnd('0');
            if (text.EndsWith('.')) text = text[..^1];
        }
        return text;
    }
}
