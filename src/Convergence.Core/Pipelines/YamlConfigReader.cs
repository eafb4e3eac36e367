using System.Globalization;
using Convergence.Core.Configuration;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Reads values out of a YAML node tree with the file, line and field of every error, and rejects unknown fields with
/// the expected ones (and a hint for common misnamings).
/// </summary>
internal sealed class YamlConfigReader(string sourceFile)
{
    /// <summary>Misnamings seen in the wild, mapped to the field meant.</summary>
    private static readonly Dictionary<string, string> Hints = new(StringComparer.OrdinalIgnoreCase)
    {
        ["id"] = "step_id",
        ["name"] = "step_id",
        ["step"] = "step_id",
        ["type"] = "ps_type",
        ["processor"] = "ps_type",
        ["dataset_id"] = "dataset_type",
        ["dataset"] = "dataset_type",
        ["table_id"] = "table",
        ["mode"] = "write_mode",
        ["write_disposition"] = "write_mode",
        ["depends"] = "depends_on",
        ["dependencies"] = "depends_on",
        ["timeout"] = "timeout_seconds",
        ["retries"] = "retry",
        ["dq"] = "dq_checks",
        ["checks"] = "dq_checks",
        ["vars"] = "variables",
        ["pipeline_name"] = "pipeline_id",
    };

    public string SourceFile => sourceFile;

    public ConfigurationErrorException Error(YamlNode? node, string field, string problem) =>
        new(sourceFile, node is null ? null : node.Start.Line, field, problem);

    public YamlMappingNode Mapping(YamlNode? node, string field) =>
        node as YamlMappingNode ?? throw Error(node, field, $"expected a mapping (field: value lines), found {Describe(node)}");

    public YamlSequenceNode Sequence(YamlNode? node, string field) =>
        node as YamlSequenceNode ?? throw Error(node, field, $"expected a list, found {Describe(node)}");

    /// <summary>Throws on the first key of <paramref name="map"/> not in <paramref name="allowed"/>.</summary>
    public void OnlyKnownFields(YamlMappingNode map, string field, params string[] allowed)
    {
        foreach (var (keyNode, _) in map.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? string.Empty;
            if (allowed.Contains(key, StringComparer.Ordinal))
            {
                continue;
            }

            var where = field.Length == 0 ? key : $"{field}.{key}";
            var hint = Hints.TryGetValue(key, out var meant) && allowed.Contains(meant)
                ? $"; did you mean '{meant}'?"
                : Closest(key, allowed) is { } close ? $"; did you mean '{close}'?" : string.Empty;
            throw Error(keyNode, where, $"unknown field '{key}'{hint} Expected one of: {string.Join(", ", allowed)}");
        }
    }

    /// <summary>The key node of <paramref name="key"/>, for errors about the field itself.</summary>
    public YamlNode? GetKey(YamlMappingNode map, string key) =>
        map.Children.Keys.FirstOrDefault(k => k is YamlScalarNode { Value: var v } && v == key);

    /// <summary>Item <paramref name="index"/> of a list node, or the node itself when it is not a list.</summary>
    public YamlNode? Item(YamlNode? node, int index) =>
        node is YamlSequenceNode list && index < list.Children.Count ? list.Children[index] : node;

    public YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    public string? OptionalString(YamlMappingNode map, string key, string field)
    {
        var node = Get(map, key);
        if (node is null || IsNull(node))
        {
            return null;
        }

        return node is YamlScalarNode scalar
            ? scalar.Value
            : throw Error(node, field, $"expected a text value, found {Describe(node)}");
    }

    public string RequiredString(YamlMappingNode map, string key, string field)
    {
        var value = OptionalString(map, key, field);
        return string.IsNullOrWhiteSpace(value)
            ? throw Error(Get(map, key) ?? map, field, $"'{key}' is required")
            : value;
    }

    public int? OptionalInt(YamlMappingNode map, string key, string field, int min, int max) =>
        OptionalNumber(map, key, field, min, max, NumberStyles.Integer, "a whole number");

    public double? OptionalNumber(YamlMappingNode map, string key, string field, double min, double max) =>
        OptionalNumber(map, key, field, min, max, NumberStyles.Float, "a number");

    private T? OptionalNumber<T>(YamlMappingNode map, string key, string field, T min, T max, NumberStyles style, string what)
        where T : struct, System.Numerics.INumber<T>
    {
        var text = OptionalString(map, key, field);
        if (text is null)
        {
            return null;
        }

        return T.TryParse(text, style, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw Error(Get(map, key), field, $"expected {what} from {min} to {max}, found '{text}'");
    }

    public IReadOnlyList<string> StringList(YamlMappingNode map, string key, string field)
    {
        var node = Get(map, key);
        if (node is null || IsNull(node))
        {
            return [];
        }

        if (node is YamlScalarNode single)
        {
            return [single.Value ?? string.Empty];
        }

        var list = Sequence(node, field);
        var items = new List<string>();
        for (var i = 0; i < list.Children.Count; i++)
        {
            items.Add(list.Children[i] is YamlScalarNode s && !IsNull(s)
                ? s.Value!
                : throw Error(list.Children[i], $"{field}[{i}]", $"expected a text value, found {Describe(list.Children[i])}"));
        }

        return items;
    }

    /// <summary>Converts a free-form node (processor config) to plain values: strings, lists and maps.</summary>
    public object? ToPlain(YamlNode node) => node switch
    {
        YamlScalarNode s when IsNull(s) => null,
        YamlScalarNode s => s.Value,
        YamlSequenceNode list => list.Children.Select(ToPlain).ToList(),
        YamlMappingNode map => map.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value ?? string.Empty, kv => ToPlain(kv.Value), StringComparer.Ordinal),
        _ => null,
    };

    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    private static string Describe(YamlNode? node) => node switch
    {
        null => "nothing",
        YamlScalarNode s when IsNull(s) => "an empty value",
        YamlScalarNode s => $"'{s.Value}'",
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => node.NodeType.ToString(),
    };

    private static string? Closest(string key, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Levenshtein(key.ToLowerInvariant(), candidate);
            if (distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }

        return bestDistance <= Math.Max(2, key.Length / 3) ? best : null;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
