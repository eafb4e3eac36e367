using System.Text.Json;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>One field of a BigQuery result schema (<c>schema.fields[]</c>): name, type, mode and, for RECORD, its fields.</summary>
public sealed record BigQueryField(string Name, string Type, string Mode, IReadOnlyList<BigQueryField> Fields)
{
    public bool IsRepeated => Mode == "REPEATED";

    public bool IsRecord => Type is "RECORD" or "STRUCT";

    /// <summary>The fields of a response's <c>schema</c> object.</summary>
    /// <exception cref="FormatException">The schema is not an object with a <c>fields</c> array of named, typed fields.</exception>
    public static IReadOnlyList<BigQueryField> ParseSchema(JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object || !schema.TryGetProperty("fields", out var fields) || fields.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("the schema has no fields array");
        }

        return ParseFields(fields, "schema");
    }

    private static List<BigQueryField> ParseFields(JsonElement fields, string where)
    {
        var list = new List<BigQueryField>(fields.GetArrayLength());
        var i = 0;
        foreach (var field in fields.EnumerateArray())
        {
            var at = $"{where}.fields[{i++}]";
            if (field.ValueKind != JsonValueKind.Object
                || !field.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || name.GetString() is not { Length: > 0 } n
                || !field.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() is not { Length: > 0 } t)
            {
                throw new FormatException($"{at} has no name or type");
            }

            var mode = field.TryGetProperty("mode", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "NULLABLE";
            var children = field.TryGetProperty("fields", out var f) && f.ValueKind == JsonValueKind.Array ? ParseFields(f, at) : [];
            var parsed = new BigQueryField(n, t.ToUpperInvariant(), mode.ToUpperInvariant(), children);
            if (parsed.IsRecord && children.Count == 0)
            {
                throw new FormatException($"{at} ('{n}') is a {t} without fields");
            }

            list.Add(parsed);
        }

        return list;
    }
}
