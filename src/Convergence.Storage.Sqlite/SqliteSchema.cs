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
        var sql = new StringBuilder();
        sql.Append("CREATE TABLE IF NOT EXISTS ").Append(Quote(schema.Name)).Append(" (");
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
        yield return sql.ToString();

        foreach (var index in schema.Indexes)
        {
            var name = $"ix_{schema.Name}_{string.Join("_", index)}";
            yield return $"CREATE INDEX IF NOT EXISTS {Quote(name.Length > 63 ? name[..63] : name)} ON {Quote(schema.Name)} ({string.Join(", ", index.Select(Quote))})";
        }
    }

    public static string TypeOf(ColumnType type) => type switch
    {
        ColumnType.Int64 or ColumnType.Bool => "INTEGER",
        ColumnType.Float64 => "REAL",
        _ => "TEXT",
    };

    public static string? Timestamp(DateTimeOffset? value) => value is { } v ? FormatTimestamp(v.UtcDateTime) : null;

    /// <summary><see cref="TimestampFormat"/> written digit by digit: bulk loads format millions of these.</summary>
    private static string FormatTimestamp(DateTime utc) => string.Create(28, utc, static (chars, t) =>
    {
        static void Digits(Span<char> into, int value, int count)
        {
            for (var i = count - 1; i >= 0; i--)
            {
                into[i] = (char)('0' + (value % 10));
                value /= 10;
            }
        }

        Digits(chars, t.Year, 4);
        chars[4] = '-';
        Digits(chars[5..], t.Month, 2);
        chars[7] = '-';
        Digits(chars[8..], t.Day, 2);
        chars[10] = 'T';
        Digits(chars[11..], t.Hour, 2);
        chars[13] = ':';
        Digits(chars[14..], t.Minute, 2);
        chars[16] = ':';
        Digits(chars[17..], t.Second, 2);
        chars[19] = '.';
        Digits(chars[20..], (int)(t.Ticks % TimeSpan.TicksPerSecond), 7);
        chars[27] = 'Z';
    });

    public static DateTimeOffset ParseTimestamp(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    public static DateTimeOffset? ParseTimestampOrNull(string? text) => text is null ? null : ParseTimestamp(text);

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
