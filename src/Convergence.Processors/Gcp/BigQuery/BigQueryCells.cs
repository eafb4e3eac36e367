using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Convergence.Core.Storage;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>
/// Converts the cells of a BigQuery result (<c>rows[].f[].v</c>, typed by the response's schema) to the values a
/// destination column of a <see cref="ColumnType"/> holds, or to the dotted export fields of
/// <see cref="GcpBillingExportReader.FlatRowMapper"/>.
/// </summary>
/// <remarks>
/// <para>BigQuery sends every scalar as a JSON string: INT64 as digits, FLOAT64 as its shortest text (or <c>NaN</c>,
/// <c>Infinity</c>), NUMERIC and BIGNUMERIC as exact decimal text, BOOL as <c>true</c>/<c>false</c>, DATE as
/// <c>yyyy-MM-dd</c>, DATETIME as <c>yyyy-MM-ddTHH:mm:ss[.ffffff]</c>, TIMESTAMP as float seconds since the epoch
/// (<c>1.6049484E9</c>), JSON as JSON text. A REPEATED field is <c>[{"v": …}, …]</c> and a RECORD <c>{"f": [{"v": …}]}</c>;
/// both become JSON text (records as objects by field name), for JSON or STRING columns.</para>
/// <para>Numbers never pass through a double on their way to NUMERIC: decimals are parsed from the cell's text, and a
/// value a <see cref="decimal"/> cannot hold exactly (a BIGNUMERIC with more than 28 significant digits) is an error,
/// not a rounding. Every failure is a <see cref="FormatException"/> whose message says what the value is and what the
/// column needs; callers add the row and column.</para>
/// </remarks>
internal static partial class BigQueryCells
{
    /// <summary>The value of <paramref name="cell"/> (a cell's <c>v</c>) for a destination column of <paramref name="target"/>.</summary>
    public static object? ToColumn(JsonElement cell, BigQueryField field, ColumnType target)
    {
        if (cell.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return null;
        }

        if (field.IsRepeated || field.IsRecord)
        {
            return target is ColumnType.Json or ColumnType.String
                ? ToJsonText(cell, field)
                : throw new FormatException($"is a {Describe(field)}; only a JSON or STRING column can hold it");
        }

        var text = Scalar(cell, field);
        var type = field.Type;
        return target switch
        {
            ColumnType.String => type switch
            {
                "TIMESTAMP" => FormatTimestamp(ParseTimestamp(text)),
                "BOOL" or "BOOLEAN" => ParseBool(text) ? "true" : "false",
                _ => text,
            },
            ColumnType.Int64 => type switch
            {
                "INT64" or "INTEGER" or "STRING" => long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)
                    ? l
                    : throw new FormatException($"'{Clip(text)}' is not a whole number in the INT64 range"),
                "NUMERIC" or "BIGNUMERIC" or "DECIMAL" or "BIGDECIMAL" => ExactDecimal(text) is var d && decimal.Truncate(d) == d && d is >= long.MinValue and <= long.MaxValue
                    ? (long)d
                    : throw new FormatException($"{type} '{Clip(text)}' is not a whole number in the INT64 range"),
                _ => throw Mismatch(field, target),
            },
            ColumnType.Float64 => type switch
            {
                "FLOAT64" or "FLOAT" or "INT64" or "INTEGER" or "NUMERIC" or "BIGNUMERIC" or "DECIMAL" or "BIGDECIMAL" or "STRING" =>
                    double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f)
                        ? f
                        : throw new FormatException($"'{Clip(text)}' is not a number"),
                _ => throw Mismatch(field, target),
            },
            ColumnType.Numeric => type switch
            {
                "NUMERIC" or "BIGNUMERIC" or "DECIMAL" or "BIGDECIMAL" or "INT64" or "INTEGER" or "STRING" => ExactDecimal(text),
                // A FLOAT64's text is the shortest that round-trips the double: read as a decimal, it is the value BigQuery shows.
                "FLOAT64" or "FLOAT" => decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var m)
                    ? m
                    : throw new FormatException($"FLOAT64 '{Clip(text)}' has no decimal value (NaN, infinite or out of range)"),
                _ => throw Mismatch(field, target),
            },
            ColumnType.Bool => type switch
            {
                "BOOL" or "BOOLEAN" or "STRING" => ParseBool(text),
                _ => throw Mismatch(field, target),
            },
            ColumnType.Date => type switch
            {
                "DATE" or "STRING" => DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day)
                    ? day
                    : throw new FormatException($"'{Clip(text)}' is not a date (yyyy-MM-dd)"),
                _ => throw new FormatException($"is a {type}; a DATE column needs a DATE (convert it in the query, such as DATE(x))"),
            },
            ColumnType.Timestamp => type switch
            {
                "TIMESTAMP" => ParseTimestamp(text),
                // DATETIME has no zone: read as UTC wall-clock time, as BigQuery's TIMESTAMP(datetime) does by default.
                "DATETIME" or "DATE" or "STRING" => ParseDateTime(text),
                _ => throw Mismatch(field, target),
            },
            ColumnType.Json => type switch
            {
                "JSON" or "STRING" => ValidJson(text),
                "INT64" or "INTEGER" or "FLOAT64" or "FLOAT" or "NUMERIC" or "BIGNUMERIC" or "DECIMAL" or "BIGDECIMAL" => JsonNumber().IsMatch(text) ? text : JsonSerializer.Serialize(text),
                "BOOL" or "BOOLEAN" => ParseBool(text) ? "true" : "false",
                "TIMESTAMP" => JsonSerializer.Serialize(FormatTimestamp(ParseTimestamp(text))),
                _ => JsonSerializer.Serialize(text),
            },
            _ => throw Mismatch(field, target),
        };
    }

    /// <summary>
    /// Adds the cell to <paramref name="into"/> under its dotted name (<paramref name="prefix"/> + name) as the export
    /// reader takes it: RECORD fields one by one, REPEATED fields as JSON text, TIMESTAMP as ISO 8601, other scalars as
    /// their exact text.
    /// </summary>
    public static void Flatten(JsonElement cell, BigQueryField field, string prefix, IDictionary<string, string?> into)
    {
        var name = prefix + field.Name;
        if (cell.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            into[name] = null;
            return;
        }

        if (field.IsRepeated)
        {
            into[name] = ToJsonText(cell, field);
            return;
        }

        if (field.IsRecord)
        {
            var values = RecordValues(cell, field);
            for (var i = 0; i < field.Fields.Count; i++)
            {
                Flatten(values[i], field.Fields[i], name + ".", into);
            }

            return;
        }

        var text = Scalar(cell, field);
        into[name] = field.Type == "TIMESTAMP" ? FormatTimestamp(ParseTimestamp(text)) : text;
    }

    /// <summary>The cell as JSON: REPEATED as an array, RECORD as an object by field name, numbers exact, TIMESTAMP as ISO 8601 text.</summary>
    public static string ToJsonText(JsonElement cell, BigQueryField field)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteJson(writer, cell, field, field.IsRepeated);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>The <c>v</c> of each cell of a result row <c>{"f": [{"v": …}, …]}</c>; <paramref name="count"/> cells are required.</summary>
    public static JsonElement[] RowValues(JsonElement row, int count)
    {
        if (row.ValueKind != JsonValueKind.Object || !row.TryGetProperty("f", out var cells) || cells.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("the row is not {\"f\": [cells]}");
        }

        if (cells.GetArrayLength() != count)
        {
            throw new FormatException($"the row has {cells.GetArrayLength()} cells; the schema has {count} fields");
        }

        var values = new JsonElement[count];
        var i = 0;
        foreach (var cell in cells.EnumerateArray())
        {
            values[i++] = cell.ValueKind == JsonValueKind.Object && cell.TryGetProperty("v", out var v)
                ? v
                : throw new FormatException($"cell {i} is not {{\"v\": value}}");
        }

        return values;
    }

    /// <summary>Float seconds since the epoch (BigQuery's default), or ISO 8601 text, as a UTC instant to the tick.</summary>
    public static DateTimeOffset ParseTimestamp(string text)
    {
        if (decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
        {
            var ticks = decimal.Round(seconds * TimeSpan.TicksPerSecond, MidpointRounding.ToEven);
            var max = (decimal)(DateTimeOffset.MaxValue.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks);
            var min = -(decimal)DateTimeOffset.UnixEpoch.UtcTicks;
            return ticks >= min && ticks <= max
                ? DateTimeOffset.UnixEpoch.AddTicks((long)ticks)
                : throw new FormatException($"TIMESTAMP '{Clip(text)}' is out of range");
        }

        return ExportTimestamps.TryParse(text, out var instant)
            ? instant
            : throw new FormatException($"'{Clip(text)}' is not a TIMESTAMP (float seconds since 1970 or ISO 8601)");
    }

    /// <summary>ISO 8601 in UTC with microseconds, BigQuery's own precision: <c>2020-11-09T23:00:00.000000Z</c>.</summary>
    public static string FormatTimestamp(DateTimeOffset instant) =>
        instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// Exact decimal text (NUMERIC, BIGNUMERIC, INT64) as a <see cref="decimal"/>; a value with more significant digits
    /// than a decimal holds, or out of its range, is an error rather than rounded.
    /// </summary>
    public static decimal ExactDecimal(string text)
    {
        if (!decimal.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var value))
        {
            throw new FormatException($"'{Clip(text)}' is not an exact decimal within ±7.9e28");
        }

        if (!text.Contains('e', StringComparison.OrdinalIgnoreCase) && Normalize(text) != Normalize(value.ToString(CultureInfo.InvariantCulture)))
        {
            throw new FormatException($"'{Clip(text)}' has more significant digits than an exact decimal holds (28)");
        }

        return value;
    }

    private static void WriteJson(Utf8JsonWriter writer, JsonElement value, BigQueryField field, bool asArray)
    {
        if (value.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            writer.WriteNullValue();
            return;
        }

        if (asArray)
        {
            if (value.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException($"REPEATED field '{field.Name}' is not an array");
            }

            writer.WriteStartArray();
            foreach (var item in value.EnumerateArray())
            {
                WriteJson(writer, item.ValueKind == JsonValueKind.Object && item.TryGetProperty("v", out var v) ? v : item, field, asArray: false);
            }

            writer.WriteEndArray();
            return;
        }

        if (field.IsRecord)
        {
            var values = RecordValues(value, field);
            writer.WriteStartObject();
            for (var i = 0; i < field.Fields.Count; i++)
            {
                writer.WritePropertyName(field.Fields[i].Name);
                WriteJson(writer, values[i], field.Fields[i], field.Fields[i].IsRepeated);
            }

            writer.WriteEndObject();
            return;
        }

        var text = Scalar(value, field);
        switch (field.Type)
        {
            case "INT64" or "INTEGER" or "FLOAT64" or "FLOAT" or "NUMERIC" or "BIGNUMERIC" or "DECIMAL" or "BIGDECIMAL" when JsonNumber().IsMatch(text):
                writer.WriteRawValue(text, skipInputValidation: true);
                break;
            case "BOOL" or "BOOLEAN":
                writer.WriteBooleanValue(ParseBool(text));
                break;
            case "JSON":
                writer.WriteRawValue(ValidJson(text));
                break;
            case "TIMESTAMP":
                writer.WriteStringValue(FormatTimestamp(ParseTimestamp(text)));
                break;
            default:
                writer.WriteStringValue(text);
                break;
        }
    }

    private static JsonElement[] RecordValues(JsonElement value, BigQueryField field)
    {
        try
        {
            return RowValues(value, field.Fields.Count);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"RECORD '{field.Name}': {ex.Message}");
        }
    }

    private static string Scalar(JsonElement cell, BigQueryField field) => cell.ValueKind == JsonValueKind.String
        ? cell.GetString()!
        : throw new FormatException($"a {field.Type} cell must be a JSON string, not {cell.ValueKind}");

    private static bool ParseBool(string text) =>
        text.Equals("true", StringComparison.OrdinalIgnoreCase) ? true
        : text.Equals("false", StringComparison.OrdinalIgnoreCase) ? false
        : throw new FormatException($"'{Clip(text)}' is not true or false");

    private static DateTimeOffset ParseDateTime(string text)
    {
        var trimmed = text.EndsWith('Z') ? text : text + "Z";
        return ExportTimestamps.TryParse(trimmed.Replace(' ', 'T'), out var instant) || ExportTimestamps.TryParse(text, out instant)
            ? instant
            : throw new FormatException($"'{Clip(text)}' is not a date and time (yyyy-MM-ddTHH:mm:ss[.ffffff])");
    }

    private static string ValidJson(string text)
    {
        try
        {
            using var _ = JsonDocument.Parse(text);
            return text;
        }
        catch (JsonException)
        {
            throw new FormatException($"'{Clip(text)}' is not valid JSON");
        }
    }

    /// <summary>Plain decimal text without sign noise, leading zeros, trailing fractional zeros or a bare point.</summary>
    private static string Normalize(string text)
    {
        var negative = text.StartsWith('-');
        var body = text.TrimStart('+', '-');
        if (body.Contains('.', StringComparison.Ordinal))
        {
            body = body.TrimEnd('0').TrimEnd('.');
        }

        body = body.TrimStart('0');
        if (body.Length == 0 || body.StartsWith('.'))
        {
            body = "0" + body;
        }

        return negative && body != "0" ? "-" + body : body;
    }

    private static string Describe(BigQueryField field) => field.IsRepeated ? $"REPEATED {field.Type}" : field.Type;

    private static FormatException Mismatch(BigQueryField field, ColumnType target) =>
        new($"is a {field.Type}; a {target.ToString().ToUpperInvariant()} column cannot take it (convert it in the query)");

    private static string Clip(string text) => text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "…");

    [GeneratedRegex(@"\A-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex JsonNumber();
}
