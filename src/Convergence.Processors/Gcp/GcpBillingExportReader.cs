using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Convergence.Core.Errors;

namespace Convergence.Processors.Gcp;

/// <summary>
/// Streams the rows of a GCP Cloud Billing export file into <c>gcp_billing_daily_raw</c> rows: CSV flattened with
/// dotted column names (<c>service.id</c>, list text for <c>credits</c> and labels) or JSON lines as BigQuery exports
/// them (nested records, arrays of credits and labels). One row is held at a time.
/// </summary>
/// <remarks>
/// Amounts are exact decimals; <c>cost_after_credits</c> is <c>cost</c> + Σ <c>credits.amount</c>. Labels become JSON
/// objects and credits a JSON array. A row that does not parse stops the read with a
/// <see cref="RequestValidationException"/> for <see cref="Parameter"/> naming the file, line and column.
/// </remarks>
internal static class GcpBillingExportReader
{
    /// <summary>The run parameter naming the file; 422s name it.</summary>
    public const string Parameter = "source_uri";

    /// <summary>Export fields read, by their dotted export names, with the table column each fills.</summary>
    internal static readonly (string Source, string Column, FieldKind Kind, bool Required)[] Fields =
    [
        ("billing_account_id", "billing_account_id", FieldKind.Text, true),
        ("service.id", "service_id", FieldKind.Text, false),
        ("service.description", "service_description", FieldKind.Text, false),
        ("sku.id", "sku_id", FieldKind.Text, false),
        ("sku.description", "sku_description", FieldKind.Text, false),
        ("usage_start_time", "usage_start_time", FieldKind.Timestamp, true),
        ("usage_end_time", "usage_end_time", FieldKind.Timestamp, false),
        ("project.id", "project_id", FieldKind.Text, false),
        ("project.name", "project_name", FieldKind.Text, false),
        ("project.labels", "project_labels", FieldKind.Labels, false),
        ("project.ancestry_numbers", "project_ancestry_numbers", FieldKind.Text, false),
        ("labels", "labels", FieldKind.Labels, false),
        ("system_labels", "system_labels", FieldKind.Labels, false),
        ("location.location", "location", FieldKind.Text, false),
        ("location.country", "country", FieldKind.Text, false),
        ("location.region", "region", FieldKind.Text, false),
        ("location.zone", "zone", FieldKind.Text, false),
        ("export_time", "export_time", FieldKind.Timestamp, false),
        ("cost", "cost", FieldKind.Decimal, true),
        ("currency", "currency", FieldKind.Text, true),
        ("currency_conversion_rate", "currency_conversion_rate", FieldKind.Decimal, false),
        ("usage.amount", "usage_amount", FieldKind.Decimal, false),
        ("usage.unit", "usage_unit", FieldKind.Text, false),
        ("usage.amount_in_pricing_units", "usage_amount_in_pricing_units", FieldKind.Decimal, false),
        ("usage.pricing_unit", "usage_pricing_unit", FieldKind.Text, false),
        ("credits", "credits", FieldKind.Credits, false),
        ("invoice.month", "invoice_month", FieldKind.Text, false),
        ("cost_type", "cost_type", FieldKind.Text, false),
        ("resource.name", "resource_name", FieldKind.Text, false),
        ("resource.global_name", "resource_global_name", FieldKind.Text, false),
        ("partition_date", "partition_date", FieldKind.Date, false),
    ];

    internal enum FieldKind
    {
        Text,
        Decimal,
        Timestamp,
        Date,
        Labels,
        Credits,
    }

    /// <summary>
    /// The table columns of a record, in the order <see cref="ReadRecords"/> fills them: <see cref="Fields"/>' columns,
    /// then the derived <c>usage_date</c>, <c>credits_total</c>, <c>cost_after_credits</c>, <c>source_line</c> and
    /// <c>source_uri</c> (the display name of the file).
    /// </summary>
    internal static readonly IReadOnlyList<string> Columns =
        [.. Fields.Select(f => f.Column), "usage_date", "credits_total", "cost_after_credits", "source_line", "source_uri"];

    /// <summary>Position of <c>usage_date</c> in a record.</summary>
    internal static readonly int UsageDate = Fields.Length;

    private static readonly int UsageStartTime = Array.FindIndex(Fields, f => f.Column == "usage_start_time");

    /// <summary>The export's format, from <paramref name="format"/> (<c>csv</c>, <c>jsonl</c>) or the file's extension.</summary>
    public static bool IsJsonLines(string path, string? format) => format?.ToLowerInvariant() switch
    {
        "csv" => false,
        "jsonl" or "json" or "ndjson" => true,
        null or "" or "auto" => Path.GetExtension(path).ToLowerInvariant() is ".jsonl" or ".json" or ".ndjson",
        _ => throw new InvalidOperationException($"config.format '{format}' is not csv, jsonl or auto."),
    };

    /// <summary>
    /// Reads the rows of <paramref name="path"/> as records of <see cref="Columns"/>; <paramref name="displayName"/>
    /// names it in errors and fills <c>source_uri</c>. The same array is returned for every row, refilled: copy what
    /// must outlive the next row.
    /// </summary>
    public static IEnumerable<object?[]> ReadRecords(string path, string displayName, bool jsonLines, CancellationToken cancellationToken)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        using var text = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var rows = jsonLines ? ReadJsonLines(text, displayName, cancellationToken) : ReadCsv(text, displayName, cancellationToken);
        foreach (var row in rows)
        {
            yield return row;
        }
    }

    private static IEnumerable<object?[]> ReadCsv(TextReader text, string file, CancellationToken cancellationToken)
    {
        var csv = new CsvRecordReader(text);
        var record = new List<string>(40);
        if (!Read(csv, record, file))
        {
            throw Invalid(file, 1, null, "the file is empty; a GCP billing export CSV starts with its header row");
        }

        var header = record.ToArray();
        var positions = new int[Fields.Length];
        for (var f = 0; f < Fields.Length; f++)
        {
            positions[f] = Array.IndexOf(header, Fields[f].Source);
            if (positions[f] < 0 && Fields[f].Required)
            {
                throw Invalid(file, 1, null, $"the header has no '{Fields[f].Source}' column; expected a GCP billing export with columns such as {string.Join(", ", Fields.Where(x => x.Required).Select(x => x.Source))}");
            }
        }

        // Numbers, instants and dates are parsed from the reader's buffer: no string per field and row.
        for (var f = 0; f < Fields.Length; f++)
        {
            if (positions[f] >= 0 && IsParsed(Fields[f].Kind))
            {
                csv.KeepRaw(positions[f]);
            }
        }

        var values = new string?[Fields.Length];
        var row = NewRecord(file);
        var labels = new LabelsMemo();
        Func<int, string> where = f => $"column {positions[f] + 1} ({Fields[f].Source})";
        while (Read(csv, record, file))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (csv.Blank)
            {
                continue;
            }

            if (record.Count != header.Length)
            {
                throw Invalid(file, csv.RecordLine, null, $"the row has {record.Count} fields; the header has {header.Length}");
            }

            for (var f = 0; f < Fields.Length; f++)
            {
                values[f] = positions[f] < 0 || record[positions[f]].Length == 0 ? null : record[positions[f]];
            }

            yield return Build(values, csv, positions, row, labels, file, csv.RecordLine, where);
        }
    }

    private static bool IsParsed(FieldKind kind) => kind is FieldKind.Decimal or FieldKind.Timestamp or FieldKind.Date;

    private static bool Read(CsvRecordReader csv, List<string> record, string file)
    {
        try
        {
            return csv.Read(record);
        }
        catch (CsvFormatException ex)
        {
            throw Invalid(file, ex.Line, $"column {ex.Column}", ex.Problem);
        }
    }

    private static IEnumerable<object?[]> ReadJsonLines(TextReader text, string file, CancellationToken cancellationToken)
    {
        var mapper = new FlatRowMapper(file);
        var flat = new Dictionary<string, string?>(StringComparer.Ordinal);
        long lineNumber = 0;
        while (text.ReadLine() is { } line)
        {
            lineNumber++;
            cancellationToken.ThrowIfCancellationRequested();
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            flat.Clear();
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw Invalid(file, lineNumber, null, "each line must be a JSON object (one export row)");
                }

                Flatten(document.RootElement, null, flat);
            }
            catch (JsonException ex)
            {
                throw Invalid(file, lineNumber, $"column {(ex.BytePositionInLine ?? 0) + 1}", $"not valid JSON: {ex.Message}");
            }

            yield return mapper.Map(flat, lineNumber);
        }
    }

    /// <summary>
    /// Maps export rows given as their fields by dotted export name (<c>service.id</c>; nested records flattened, arrays
    /// of credits and labels as JSON text, numbers as their exact text) to records of <see cref="Columns"/>: the one
    /// conversion and credit netting of JSON lines files and of BigQuery results (<c>source: bigquery</c>,
    /// <c>format: gcp_billing_export</c>). Like <see cref="ReadRecords"/> it refills one array per row.
    /// </summary>
    /// <param name="source">Fills <c>source_uri</c> and names the source in errors.</param>
    /// <param name="lineName">What a row's number is called in errors (<c>line</c> of a file, <c>row</c> of a result).</param>
    internal sealed class FlatRowMapper(string source, string lineName = "line")
    {
        private readonly string?[] _values = new string?[Fields.Length];
        private readonly object?[] _row = NewRecord(source);
        private readonly LabelsMemo _labels = new();

        /// <exception cref="RequestValidationException">A field does not convert; names the source, row and field.</exception>
        public object?[] Map(IReadOnlyDictionary<string, string?> flat, long line)
        {
            for (var f = 0; f < Fields.Length; f++)
            {
                _values[f] = flat.TryGetValue(Fields[f].Source, out var v) && v is { Length: > 0 } ? v : null;
            }

            return Build(_values, null, null, _row, _labels, source, line, f => $"field '{Fields[f].Source}'", lineName);
        }
    }

    private static void Flatten(JsonElement element, string? prefix, Dictionary<string, string?> into)
    {
        foreach (var property in element.EnumerateObject())
        {
            var name = prefix is null ? property.Name : $"{prefix}.{property.Name}";
            var value = property.Value;
            switch (value.ValueKind)
            {
                case JsonValueKind.Object:
                    Flatten(value, name, into);
                    break;
                case JsonValueKind.String:
                    into[name] = value.GetString();
                    break;
                case JsonValueKind.Null or JsonValueKind.Undefined:
                    into[name] = null;
                    break;
                default:
                    // Numbers keep their exact text; arrays (credits, labels) go to the list-text parser as JSON.
                    into[name] = value.GetRawText();
                    break;
            }
        }
    }

    private static object?[] NewRecord(string file)
    {
        var record = new object?[Columns.Count];
        record[^1] = file;
        return record;
    }

    /// <summary>
    /// Converts one row's field texts into <paramref name="row"/> (a record of <see cref="Columns"/>): from
    /// <paramref name="values"/>, or for parsed kinds read from CSV, from <paramref name="csv"/>'s buffer at the field's
    /// <paramref name="positions"/> (null or empty text is an empty field).
    /// </summary>
    private static object?[] Build(string?[] values, CsvRecordReader? csv, int[]? positions, object?[] row, LabelsMemo labels, string file, long line, Func<int, string> where, string lineName = "line")
    {
        decimal cost = 0, credits = 0;
        var f = 0;
        try
        {
            for (f = 0; f < Fields.Length; f++)
            {
                var (_, column, kind, required) = Fields[f];
                var text = values[f];
                if (csv is not null && IsParsed(kind))
                {
                    var field = positions![f] < 0 ? default : csv.RawField(positions[f]);
                    if (!field.IsEmpty)
                    {
                        row[f] = Parsed(kind, field, ref cost, column == "cost");
                        continue;
                    }
                }

                if (text is null)
                {
                    if (required)
                    {
                        throw new FormatException("is empty; the column is required");
                    }

                    row[f] = kind switch
                    {
                        FieldKind.Labels => "{}",
                        FieldKind.Credits => "[]",
                        _ => null,
                    };
                    continue;
                }

                switch (kind)
                {
                    case FieldKind.Text:
                        row[f] = text;
                        break;
                    case FieldKind.Decimal or FieldKind.Timestamp or FieldKind.Date:
                        row[f] = Parsed(kind, text, ref cost, column == "cost");
                        break;
                    case FieldKind.Labels:
                        row[f] = labels.Json(text);
                        break;
                    case FieldKind.Credits:
                        (var json, credits) = ListText.Credits(text);
                        row[f] = json;
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is FormatException or ListTextException)
        {
            throw Invalid(file, line, where(f), ex.Message, lineName);
        }

        row[UsageDate] = DateOnly.FromDateTime(((DateTimeOffset)row[UsageStartTime]!).UtcDateTime);
        row[UsageDate + 1] = credits;
        row[UsageDate + 2] = cost + credits;
        row[UsageDate + 3] = line;
        return row;
    }

    /// <summary>
    /// A decimal, timestamp or date field's value; a decimal is also stored in <paramref name="amount"/> when
    /// <paramref name="keep"/> (the row's cost).
    /// </summary>
    private static object Parsed(FieldKind kind, ReadOnlySpan<char> text, ref decimal amount, bool keep)
    {
        switch (kind)
        {
            case FieldKind.Decimal:
                var d = ListText.TryDecimal(text, out var parsed) ? parsed : throw new FormatException($"'{Clip(text)}' is not a decimal number");
                if (keep)
                {
                    amount = d;
                }

                return d;
            case FieldKind.Timestamp:
                return ExportTimestamps.TryParse(text, out var t) ? t : throw new FormatException($"'{Clip(text)}' is not a timestamp such as 2020-11-09 23:00:00+00:00");
            default:
                return ExportTimestamps.TryParse(text, out var p) ? DateOnly.FromDateTime(p.UtcDateTime) : throw new FormatException($"'{Clip(text)}' is not a date");
        }
    }

    /// <summary>
    /// Labels JSON by list text for one read: exports repeat the same few label sets row after row, and each is parsed
    /// once. Bounded: the memo starts over when it holds <see cref="Capacity"/> texts.
    /// </summary>
    private sealed class LabelsMemo
    {
        private const int Capacity = 4096;
        private readonly Dictionary<string, string> _json = new(StringComparer.Ordinal);

        public string Json(string text)
        {
            if (_json.TryGetValue(text, out var json))
            {
                return json;
            }

            if (_json.Count == Capacity)
            {
                _json.Clear();
            }

            return _json[text] = ListText.Labels(text);
        }
    }

    private static string Clip(ReadOnlySpan<char> text) => text.Length <= 40 ? text.ToString() : string.Concat(text[..40], "…");

    internal static RequestValidationException Invalid(string file, long line, string? column, string problem, string lineName = "line") =>
        RequestValidationException.For(Parameter, $"{file} {lineName} {line.ToString(CultureInfo.InvariantCulture)}{(column is null ? string.Empty : ", " + column)}: {problem}. Nothing was written.");
}

/// <summary>The timestamp spellings of GCP billing exports, read as UTC.</summary>
internal static class ExportTimestamps
{
    /// <summary>
    /// Parses <c>2020-11-09 23:00:00+00:00</c>, <c>2020-11-10 05:49:32.199000+00:00</c>, BigQuery's
    /// <c>2020-11-09 23:00:00 UTC</c>, ISO 8601 with <c>T</c> and <c>Z</c>, and a bare date (midnight UTC).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> text, out DateTimeOffset value)
    {
        if (TryParseFast(text, out value))
        {
            return true;
        }

        var trimmed = text.EndsWith(" UTC", StringComparison.Ordinal) ? text[..^4] : text;
        if (DateTimeOffset.TryParse(trimmed, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value))
        {
            value = value.ToUniversalTime();
            return true;
        }

        return false;
    }

    private static bool TryParseFast(ReadOnlySpan<char> s, out DateTimeOffset value)
    {
        value = default;
        if (s.Length < 10 || s[4] != '-' || s[7] != '-')
        {
            return false;
        }

        if (!Digits(s, 0, 4, out var year) || !Digits(s, 5, 2, out var month) || !Digits(s, 8, 2, out var day))
        {
            return false;
        }

        int hour = 0, minute = 0, second = 0;
        long ticks = 0;
        var at = 10;
        if (s.Length > 10)
        {
            if (s.Length < 19 || s[10] is not (' ' or 'T') || s[13] != ':' || s[16] != ':'
                || !Digits(s, 11, 2, out hour) || !Digits(s, 14, 2, out minute) || !Digits(s, 17, 2, out second))
            {
                return false;
            }

            at = 19;
            if (at < s.Length && s[at] == '.')
            {
                at++;
                var scale = TimeSpan.TicksPerSecond;
                var start = at;
                while (at < s.Length && char.IsAsciiDigit(s[at]))
                {
                    scale /= 10;
                    ticks += (s[at] - '0') * scale;
                    at++;
                }

                if (at == start || at - start > 7)
                {
                    return false;
                }
            }
        }

        var rest = s[at..];
        if (!(rest.IsEmpty || rest is "Z" or "+00:00" or " UTC" or "+0000" or "-00:00"))
        {
            return false;
        }

        if (month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59 || year < 1)
        {
            return false;
        }

        value = new DateTimeOffset(year, month, day, hour, minute, second, TimeSpan.Zero).AddTicks(ticks);
        return true;
    }

    private static bool Digits(ReadOnlySpan<char> s, int start, int count, out int value)
    {
        value = 0;
        for (var i = start; i < start + count; i++)
        {
            if (!char.IsAsciiDigit(s[i]))
            {
                return false;
            }

            value = (value * 10) + (s[i] - '0');
        }

        return true;
    }
}
