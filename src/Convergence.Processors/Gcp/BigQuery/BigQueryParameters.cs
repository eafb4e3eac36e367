using System.Globalization;
using System.Text.Json;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>
/// Run values as BigQuery named query parameters (<c>{name, parameterType: {type}, parameterValue: {value}}</c>): the
/// SQL refers to them as <c>@name</c>, so no value is ever spliced into the query text.
/// </summary>
internal static class BigQueryParameters
{
    /// <summary>The BigQuery type a run value binds as: DATE, TIMESTAMP, INT64, NUMERIC, FLOAT64, BOOL, else STRING.</summary>
    public static string TypeOf(object? value) => value switch
    {
        DateOnly => "DATE",
        DateTimeOffset or DateTime => "TIMESTAMP",
        long or int or short => "INT64",
        decimal => "NUMERIC",
        double or float => "FLOAT64",
        bool => "BOOL",
        _ => "STRING",
    };

    /// <summary>The parameter's value as BigQuery's JSON takes it (text), or null for SQL NULL.</summary>
    public static string? TextOf(object? value) => value switch
    {
        null => null,
        DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        DateTimeOffset t => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + " UTC",
        DateTime t => DateTime.SpecifyKind(t, DateTimeKind.Utc).ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + " UTC",
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    public static void Write(Utf8JsonWriter json, string name, object? value)
    {
        json.WriteStartObject();
        json.WriteString("name", name);
        json.WriteStartObject("parameterType");
        json.WriteString("type", TypeOf(value));
        json.WriteEndObject();
        json.WriteStartObject("parameterValue");
        if (TextOf(value) is { } text)
        {
            json.WriteString("value", text);
        }

        // An empty parameterValue is SQL NULL.
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
