using System.Text;
using Convergence.Core.Configuration;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Replaces <c>{name}</c> placeholders in strings, and recursively in maps and lists, from a fixed set of values.
/// An unknown placeholder is an error, never left in place.
/// </summary>
public sealed class PlaceholderResolver(IReadOnlyDictionary<string, string> values, string sourceFile)
{
    public string Resolve(string text, string field)
    {
        if (!text.Contains('{', StringComparison.Ordinal))
        {
            return text;
        }

        var result = new StringBuilder(text.Length);
        var i = 0;
        while (i < text.Length)
        {
            var open = text.IndexOf('{', i);
            if (open < 0)
            {
                result.Append(text, i, text.Length - i);
                break;
            }

            var close = text.IndexOf('}', open + 1);
            var name = close < 0 ? null : text.Substring(open + 1, close - open - 1);
            if (name is null || !Storage.SqlIdentifier.IsValid(name))
            {
                // Not a placeholder (JSON, a lone brace): keep the brace as text.
                result.Append(text, i, open - i + 1);
                i = open + 1;
                continue;
            }

            if (!values.TryGetValue(name, out var value))
            {
                throw new ConfigurationErrorException(
                    sourceFile,
                    null,
                    field,
                    $"placeholder '{{{name}}}' cannot be resolved; known: {string.Join(", ", values.Keys.Order(StringComparer.Ordinal).Select(k => "{" + k + "}"))}");
            }

            result.Append(text, i, open - i).Append(value);
            i = close + 1;
        }

        return result.ToString();
    }

    public object? ResolveValue(object? value, string field) => value switch
    {
        string s => Resolve(s, field),
        System.Collections.IDictionary map => map.Keys.Cast<object>().ToDictionary(
            k => Convert.ToString(k, System.Globalization.CultureInfo.InvariantCulture)!,
            k => ResolveValue(map[k], $"{field}.{k}")),
        IEnumerable<object?> list => list.Select((item, index) => ResolveValue(item, $"{field}[{index}]")).ToList(),
        _ => value,
    };

    public IReadOnlyDictionary<string, object?> ResolveMap(IReadOnlyDictionary<string, object?> map, string field) =>
        map.ToDictionary(kv => kv.Key, kv => ResolveValue(kv.Value, $"{field}.{kv.Key}"));
}
