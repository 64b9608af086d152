namespace KimiSharp.Jinja;

/// <summary>
/// Python's orderings for callers that prepare template inputs the way Python code would (for example
/// transformers' <c>deep_sort_dict</c> before a chat template renders tool declarations).
/// </summary>
public static class PythonOrdering
{
    /// <summary>Python's <c>str</c> order: by code point, so characters above U+FFFF sort after U+E000..U+FFFF.</summary>
    public static IComparer<string> CodePoint => PyText.CodePointComparer;

    /// <summary>
    /// A copy of <paramref name="value"/> with every dict's keys sorted recursively as Python's <c>sorted()</c>
    /// sorts them (stable, with Python's cross-type rules); lists keep their order; other values are returned as is.
    /// </summary>
    public static JinjaValue SortDictKeysRecursively(JinjaValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        switch (value)
        {
            case JinjaDict dict:
            {
                var sorted = new JinjaDict();
                foreach (var key in Filters.StableSort(dict.Keys.ToList(), k => k, false))
                    sorted[key] = SortDictKeysRecursively(dict[key]);
                return sorted;
            }
            case JinjaList list:
                return new JinjaList(list.Items.Select(SortDictKeysRecursively).ToList());
            default:
                return value;
        }
    }
}
