using System.Globalization;

namespace Convergence.Core.Storage;

/// <summary>
/// Typed reads of warehouse query rows, whatever the adapter returned for the column (SQLite gives text for dates and
/// NUMERIC, integers for BOOL; PostgreSQL gives the native types).
/// </summary>
public static class RowValues
{
    public static string? Text(this IReadOnlyDictionary<string, object?> row, string column) =>
        row.TryGetValue(column, out var v) && v is not null ? Convert.ToString(v, CultureInfo.InvariantCulture) : null;

    public static string RequireText(this IReadOnlyDictionary<string, object?> row, string column) =>
        row.Text(column) ?? throw new InvalidOperationException($"Column '{column}' is null.");

    public static long Long(this IReadOnlyDictionary<string, object?> row, string column) => row.TryGetValue(column, out var v) ? v switch
    {
        null => 0,
        long l => l,
        int i => i,
        decimal m => (long)m,
        string s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture),
        _ => Convert.ToInt64(v, CultureInfo.InvariantCulture),
    } : 0;

    /// <summary>The integer in <paramref name="column"/>, or null when the column is null or missing.</summary>
    public static long? LongOrNull(this IReadOnlyDictionary<string, object?> row, string column) =>
        row.TryGetValue(column, out var v) && v is not null ? row.Long(column) : null;

    public static decimal Decimal(this IReadOnlyDictionary<string, object?> row, string column) => row.TryGetValue(column, out var v) ? v switch
    {
        null => 0m,
        decimal m => m,
        long l => l,
        int i => i,
        string s => decimal.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture),
        double d => (decimal)d,
        _ => Convert.ToDecimal(v, CultureInfo.InvariantCulture),
    } : 0m;

    /// <summary>The decimal in <paramref name="column"/>, or null when the column is null.</summary>
    public static decimal? DecimalOrNull(this IReadOnlyDictionary<string, object?> row, string column) =>
        row.TryGetValue(column, out var v) && v is not null ? row.Decimal(column) : null;

    /// <summary>The date in <paramref name="column"/>, or null when the column is null.</summary>
    public static DateOnly? DateOrNull(this IReadOnlyDictionary<string, object?> row, string column) =>
        row.TryGetValue(column, out var v) && v is not null ? row.Date(column) : null;

    public static bool Bool(this IReadOnlyDictionary<string, object?> row, string column) => row.TryGetValue(column, out var v) && v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        int i => i != 0,
        string s => s is "1" or "true" or "TRUE" or "True",
        _ => Convert.ToBoolean(v, CultureInfo.InvariantCulture),
    };

    public static DateOnly Date(this IReadOnlyDictionary<string, object?> row, string column) => row.TryGetValue(column, out var v) ? v switch
    {
        DateOnly d => d,
        DateTime t => DateOnly.FromDateTime(t),
        DateTimeOffset t => DateOnly.FromDateTime(t.UtcDateTime),
        string s => DateOnly.ParseExact(s.Length > 10 ? s[..10] : s, "yyyy-MM-dd", CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"Column '{column}' is not a date."),
    } : throw new InvalidOperationException($"Column '{column}' is missing.");
}
