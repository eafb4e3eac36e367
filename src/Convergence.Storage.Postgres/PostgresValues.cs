using System.Globalization;
using System.Text.Json;
using Convergence.Core.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Convergence.Storage.Postgres;

/// <summary>Conversions between .NET values and the PostgreSQL columns of the JSON table schemas.</summary>
internal static class PostgresValues
{
    /// <summary>SQLSTATE of a unique or primary key violation.</summary>
    public const string UniqueViolation = "23505";

    /// <summary>A timestamp parameter for a <c>timestamptz</c> column (Npgsql wants UTC).</summary>
    public static DateTime? Timestamp(DateTimeOffset? value) => value?.UtcDateTime;

    /// <summary>A <c>timestamptz</c> read back (Npgsql returns UTC <see cref="DateTime"/>s).</summary>
    public static DateTimeOffset FromTimestamp(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));

    public static DateTimeOffset? FromTimestamp(DateTime? value) => value is { } v ? FromTimestamp(v) : null;

    /// <summary>A <c>date</c> parameter (midnight, unspecified kind: Npgsql writes the date part).</summary>
    public static DateTime Date(DateOnly value) => value.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);

    public static bool IsUniqueViolation(Exception ex) => ex is PostgresException { SqlState: UniqueViolation };

    /// <summary>The wire type of a column of <paramref name="type"/>.</summary>
    public static NpgsqlDbType DbTypeOf(ColumnType type) => type switch
    {
        ColumnType.Int64 => NpgsqlDbType.Bigint,
        ColumnType.Float64 => NpgsqlDbType.Double,
        ColumnType.Numeric => NpgsqlDbType.Numeric,
        ColumnType.Bool => NpgsqlDbType.Boolean,
        ColumnType.Date => NpgsqlDbType.Date,
        ColumnType.Timestamp => NpgsqlDbType.TimestampTz,
        ColumnType.Json => NpgsqlDbType.Jsonb,
        _ => NpgsqlDbType.Text,
    };

    /// <summary>
    /// Writes <paramref name="value"/> (not null) as the next field of a binary COPY into a column of
    /// <paramref name="column"/>'s type. Accepts what the embedded adapter stores: the column's own .NET type, the
    /// other numeric types, and invariant text for numbers, dates and timestamps (as processors read them from files).
    /// </summary>
    public static void Write(PostgresCopyWriter writer, object value, ColumnSchema column)
    {
        switch (column.Type)
        {
            case ColumnType.Int64:
                writer.WriteInt64(ToInt64(value, column));
                break;
            case ColumnType.Float64:
                writer.WriteDouble(ToDouble(value, column));
                break;
            case ColumnType.Numeric:
                writer.WriteNumeric(ToDecimal(value, column));
                break;
            case ColumnType.Bool:
                writer.WriteBool(ToBool(value, column));
                break;
            case ColumnType.Date:
                writer.WriteDate(ToDate(value, column));
                break;
            case ColumnType.Timestamp:
                writer.WriteTimestamp(ToUtc(value, column));
                break;
            case ColumnType.Json:
                writer.WriteJsonb(ToJson(value));
                break;
            default:
                writer.WriteText(ToText(value, column));
                break;
        }
    }

    /// <summary>A value converted to the .NET type the column's wire type takes (for keys compared in memory).</summary>
    public static object ToColumnValue(object value, ColumnSchema column) => column.Type switch
    {
        ColumnType.Int64 => ToInt64(value, column),
        ColumnType.Float64 => ToDouble(value, column),
        ColumnType.Numeric => ToDecimal(value, column),
        ColumnType.Bool => ToBool(value, column),
        ColumnType.Date => ToDate(value, column),
        ColumnType.Timestamp => ToUtc(value, column),
        ColumnType.Json => ToJson(value),
        _ => ToText(value, column),
    };

    /// <summary>
    /// A query parameter. Strings and nulls go untyped, so the server reads them as the column they meet (as SQLite
    /// does with a date or a number given as text), except where the SQL tests them for NULL (<paramref name="nullTested"/>):
    /// there PostgreSQL cannot infer a type from the test, so they go as text.
    /// </summary>
    public static NpgsqlParameter Parameter(string name, object? value, bool nullTested) => value switch
    {
        null => new NpgsqlParameter(name, nullTested ? NpgsqlDbType.Text : NpgsqlDbType.Unknown) { Value = DBNull.Value },
        string s => new NpgsqlParameter(name, nullTested ? NpgsqlDbType.Text : NpgsqlDbType.Unknown) { Value = s },
        DateOnly d => new NpgsqlParameter(name, NpgsqlDbType.Date) { Value = d },
        DateTimeOffset t => new NpgsqlParameter(name, NpgsqlDbType.TimestampTz) { Value = t.UtcDateTime },
        DateTime t => new NpgsqlParameter(name, NpgsqlDbType.TimestampTz) { Value = DateTime.SpecifyKind(t, DateTimeKind.Utc) },
        decimal m => new NpgsqlParameter(name, NpgsqlDbType.Numeric) { Value = m },
        bool b => new NpgsqlParameter(name, NpgsqlDbType.Boolean) { Value = b },
        int i => new NpgsqlParameter(name, NpgsqlDbType.Bigint) { Value = (long)i },
        long l => new NpgsqlParameter(name, NpgsqlDbType.Bigint) { Value = l },
        _ => new NpgsqlParameter(name, value),
    };

    /// <summary>Whether <paramref name="sql"/> tests the <c>@name</c> parameter with IS [NOT] NULL.</summary>
    public static bool IsNullTested(string sql, string name) =>
        System.Text.RegularExpressions.Regex.IsMatch(sql, $@"@{System.Text.RegularExpressions.Regex.Escape(name)}\s+IS\s+(NOT\s+)?NULL\b", System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    private static long ToInt64(object value, ColumnSchema column) => value switch
    {
        long l => l,
        int i => i,
        short s => s,
        bool b => b ? 1 : 0,
        decimal m when decimal.Truncate(m) == m => (long)m,
        double d when Math.Truncate(d) == d => (long)d,
        string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        _ => throw Unstorable(value, column),
    };

    private static double ToDouble(object value, ColumnSchema column) => value switch
    {
        double d => d,
        float f => f,
        long l => l,
        int i => i,
        short s => s,
        decimal m => (double)m,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => throw Unstorable(value, column),
    };

    private static decimal ToDecimal(object value, ColumnSchema column) => value switch
    {
        decimal m => m,
        long l => l,
        int i => i,
        short s => s,
        double d => (decimal)d,
        float f => (decimal)f,
        string s when decimal.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) => m,
        _ => throw Unstorable(value, column),
    };

    private static bool ToBool(object value, ColumnSchema column) => value switch
    {
        bool b => b,
        long l => l != 0,
        int i => i != 0,
        short s => s != 0,
        string s when s is "1" || s.Equals("true", StringComparison.OrdinalIgnoreCase) => true,
        string s when s is "0" || s.Equals("false", StringComparison.OrdinalIgnoreCase) => false,
        _ => throw Unstorable(value, column),
    };

    private static DateOnly ToDate(object value, ColumnSchema column) => value switch
    {
        DateOnly d => d,
        DateTime t => DateOnly.FromDateTime(t),
        DateTimeOffset t => DateOnly.FromDateTime(t.UtcDateTime),
        string s when DateOnly.TryParseExact(s.Length > 10 ? s[..10] : s, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) => d,
        _ => throw Unstorable(value, column),
    };

    private static DateTime ToUtc(object value, ColumnSchema column) => value switch
    {
        DateTimeOffset t => t.UtcDateTime,
        DateTime t => DateTime.SpecifyKind(t, DateTimeKind.Utc),
        DateOnly d => d.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc),
        string s when DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t) => t.UtcDateTime,
        _ => throw Unstorable(value, column),
    };

    private static string ToJson(object value) => value as string ?? JsonSerializer.Serialize(value);

    private static string ToText(object value, ColumnSchema column) => value switch
    {
        string s => s,
        DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        DateTimeOffset t => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
        DateTime t => t.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
        bool b => b ? "1" : "0",
        long or int or short or double or float or decimal => Convert.ToString(value, CultureInfo.InvariantCulture)!,
        _ => throw Unstorable(value, column),
    };

    private static ArgumentException Unstorable(object value, ColumnSchema column) =>
        new($"Column '{column.Name}' ({column.Type}) cannot store {(value is string s ? $"'{s}'" : $"a {value.GetType().Name}")}.");
}
