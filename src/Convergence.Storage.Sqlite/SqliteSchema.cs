using System.Globalization;
using System.Text;
using System.Text.Json;
using Convergence.Core.Storage;

namespace Convergence.Storage.Sqlite;

/// <summary>DDL and value conversions for SQLite from the JSON table schemas.</summary>
/// <remarks>
/// Timestamps are stored as ISO 8601 UTC text with 7 fractional digits (so text order is time order), dates as
/// <c>yyyy-MM-dd</c>, NUMERIC as invariant decimal text (exact, never a float), BOOL as 0/1, JSON as text.
/// </remarks>
internal static class SqliteSchema
{
    public const string TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    public static string Quote(string identifier) => "\"" + SqlIdentifier.Require(identifier, "identifier") + "\"";

    public static IEnumerable<string> CreateStatements(TableSchema schema)
    {
        yield return CreateTable(schema, schema.Name);
        foreach (var (_, create) in Indexes(schema))
        {
            yield return create;
        }
    }

    /// <summary><c>CREATE TABLE IF NOT EXISTS</c> of <paramref name="schema"/>'s shape under <paramref name="name"/>.</summary>
    public static string CreateTable(TableSchema schema, string name)
    {
        var sql = new StringBuilder();
        sql.Append("CREATE TABLE IF NOT EXISTS ").Append(Quote(name)).Append(" (");
        sql.AppendJoin(", ", schema.Columns.Select(c => $"{Quote(c.Name)} {TypeOf(c.Type)}{(c.Required ? " NOT NULL" : string.Empty)}"));
        if (schema.PrimaryKey.Count > 0)
        {
            sql.Append(", PRIMARY KEY (").AppendJoin(", ", schema.PrimaryKey.Select(Quote)).Append(')');
        }

        foreach (var unique in schema.UniqueKeys)
        {
            sql.Append(", UNIQUE (").AppendJoin(", ", unique.Select(Quote)).Append(')');
        }

        sql.Append(')');
        return sql.ToString();
    }

    /// <summary>The schema's secondary indexes: each one's quoted name and its <c>CREATE INDEX IF NOT EXISTS</c>.</summary>
    public static IEnumerable<(string Name, string Create)> Indexes(TableSchema schema) => schema.Indexes.Select(i => Index(schema, i));

    /// <summary>The quoted name of the index on <paramref name="columns"/> and its <c>CREATE INDEX IF NOT EXISTS</c>.</summary>
    public static (string Name, string Create) Index(TableSchema schema, IReadOnlyList<string> columns)
    {
        var quoted = Quote(schema.IndexName(columns));
        return (quoted, $"CREATE INDEX IF NOT EXISTS {quoted} ON {Quote(schema.Name)} ({string.Join(", ", columns.Select(Quote))})");
    }

    /// <summary>
    /// <c>CREATE UNIQUE INDEX</c> for a unique key added to an existing table, named <c>uq_{table}_{columns}</c>; its
    /// catalogue entry reads like the <c>UNIQUE (…)</c> constraint a new table declares.
    /// </summary>
    public static string UniqueIndex(TableSchema schema, IReadOnlyList<string> columns)
    {
        var name = $"uq_{schema.Name}_{string.Join("_", columns)}";
        name = name.Length > SqlIdentifier.MaxLength ? name[..SqlIdentifier.MaxLength] : name;
        return $"CREATE UNIQUE INDEX IF NOT EXISTS {Quote(name)} ON {Quote(schema.Name)} ({string.Join(", ", columns.Select(Quote))})";
    }

    /// <summary><c>ALTER TABLE … ADD COLUMN</c> for a NULLABLE column (SQLite adds a column only at the end).</summary>
    public static string AddColumn(TableSchema schema, ColumnSchema column) =>
        $"ALTER TABLE {Quote(schema.Name)} ADD COLUMN {Quote(column.Name)} {TypeOf(column.Type)}";

    public static string TypeOf(ColumnType type) => type switch
    {
        ColumnType.Int64 or ColumnType.Bool => "INTEGER",
        ColumnType.Float64 => "REAL",
        _ => "TEXT",
    };

    public static string? Timestamp(DateTimeOffset? value) => value is { } v ? FormatTimestamp(v.UtcDateTime) : null;

    /// <summary>Characters of a <see cref="TimestampFormat"/> value.</summary>
    public const int TimestampLength = 28;

    /// <summary><see cref="TimestampFormat"/> written digit by digit: bulk loads format millions of these.</summary>
    private static string FormatTimestamp(DateTime utc)
    {
        Span<byte> utf8 = stackalloc byte[TimestampLength];
        FormatTimestamp(utc, utf8);
        return System.Text.Encoding.ASCII.GetString(utf8);
    }

    /// <summary>Writes <paramref name="date"/> as <c>yyyy-MM-dd</c> in ASCII into the first 10 bytes of <paramref name="into"/>.</summary>
    public static void FormatDate(DateOnly date, Span<byte> into)
    {
        Digits(into, date.Year, 4);
        into[4] = (byte)'-';
        Digits(into[5..], date.Month, 2);
        into[7] = (byte)'-';
        Digits(into[8..], date.Day, 2);
    }

    private static void Digits(Span<byte> into, long value, int count)
    {
        for (var i = count - 1; i >= 0; i--)
        {
            into[i] = (byte)('0' + (value % 10));
            value /= 10;
        }
    }

    /// <summary>Writes <paramref name="utc"/> as <see cref="TimestampFormat"/> in ASCII into <paramref name="into"/>.</summary>
    public static void FormatTimestamp(DateTime utc, Span<byte> into)
    {
        FormatDate(DateOnly.FromDateTime(utc), into);
        into[10] = (byte)'T';
        Digits(into[11..], utc.Hour, 2);
        into[13] = (byte)':';
        Digits(into[14..], utc.Minute, 2);
        into[16] = (byte)':';
        Digits(into[17..], utc.Second, 2);
        into[19] = (byte)'.';
        Digits(into[20..], utc.Ticks % TimeSpan.TicksPerSecond, 7);
        into[27] = (byte)'Z';
    }

    public static DateTimeOffset ParseTimestamp(string text) =>
        TryParseStored(text, out var value) ? value : DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    /// <summary>
    /// Reads a timestamp in <see cref="TimestampFormat"/> (how this store writes them) digit by digit: the trigger reads
    /// four per due schedule, tens of thousands at once, and the general parser dominated that read. Anything else
    /// (other layouts, out-of-range fields) is left to the general parser.
    /// </summary>
    private static bool TryParseStored(string text, out DateTimeOffset value)
    {
        value = default;
        if (text.Length != TimestampLength || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':' || text[19] != '.' || text[27] != 'Z'
            || !Digits(text, 0, 4, out var year) || !Digits(text, 5, 2, out var month) || !Digits(text, 8, 2, out var day) || !Digits(text, 11, 2, out var hour)
            || !Digits(text, 14, 2, out var minute) || !Digits(text, 17, 2, out var second) || !Digits(text, 20, 7, out var fraction)
            || year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }

        value = new DateTimeOffset(new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).AddTicks(fraction), TimeSpan.Zero);
        return true;

        static bool Digits(string text, int start, int count, out int number)
        {
            number = 0;
            for (var i = start; i < start + count; i++)
            {
                var digit = text[i] - '0';
                if (digit is < 0 or > 9)
                {
                    return false;
                }

                number = (number * 10) + digit;
            }

            return true;
        }
    }

    public static DateTimeOffset? ParseTimestampOrNull(string? text) => text is null ? null : ParseTimestamp(text);

    /// <summary>
    /// Like <see cref="ToDb"/>, but decimals, timestamps, dates and booleans stay typed: <see cref="SqliteBulkInsert"/>
    /// formats them into its bind buffer exactly as <see cref="ToDb"/> would.
    /// </summary>
    public static object ToBulkValue(object? value, ColumnType type, string column) => value switch
    {
        // Most values of a bulk load are text: tested first.
        string => value,
        null => DBNull.Value,
        DateTimeOffset or DateOnly or decimal or bool or long => value,
        DateTime t => new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)),
        _ => ToDb(value, type, column),
    };

    /// <summary>Converts a value to what SQLite stores for a column of <paramref name="type"/>.</summary>
    public static object ToDb(object? value, ColumnType type, string column) => value switch
    {
        null => DBNull.Value,
        DateTimeOffset t => Timestamp(t)!,
        DateTime t => Timestamp(new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)))!,
        DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        bool b => b ? 1 : 0,
        decimal m => type == ColumnType.Numeric ? m.ToString(CultureInfo.InvariantCulture) : m,
        string s => s,
        int or long or double or float or short => value,
        _ when type == ColumnType.Json => JsonSerializer.Serialize(value),
        _ => throw new ArgumentException($"Column '{column}' ({type}) cannot store a {value.GetType().Name}."),
    };
}
