using System.Globalization;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Convergence.Storage.Sqlite;

/// <summary>
/// A prepared multi-row INSERT bound by position through SQLite's own API, reused for every batch of a write.
/// </summary>
/// <remarks>
/// Microsoft.Data.Sqlite binds parameters by name on every execution, and SQLite looks a name up by a linear scan, so
/// binding costs grow with the square of the parameter count; this statement binds by index instead. It runs on the
/// write's connection inside its open transaction, so commit and rollback cover its rows like any other statement's.
/// Values are what <see cref="SqliteSchema.ToBulkValue"/> returns; text is bound as UTF-8 (the database's encoding),
/// and decimals, timestamps and dates are formatted straight into the bind buffer exactly as
/// <see cref="SqliteSchema.ToDb"/> would store them, without a string per value.
/// </remarks>
internal sealed class SqliteBulkInsert : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly sqlite3_stmt _statement;
    private readonly object?[] _bound;
    private byte[] _utf8 = new byte[1024];

    public SqliteBulkInsert(SqliteConnection connection, string table, IReadOnlyList<string> columns, int rows)
    {
        _connection = connection;
        Rows = rows;
        Width = columns.Count;
        var row = "(" + string.Join(", ", Enumerable.Repeat("?", Width)) + ")";
        var sql = $"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES {string.Join(", ", Enumerable.Repeat(row, rows))}";
        Check(raw.sqlite3_prepare_v2(connection.Handle, sql, out _statement));
        _bound = new object?[rows * Width];
    }

    /// <summary>Rows per execution.</summary>
    public int Rows { get; }

    /// <summary>Values per row.</summary>
    public int Width { get; }

    /// <summary>Inserts <see cref="Rows"/> rows from <paramref name="values"/> (row after row); returns the rows inserted.</summary>
    /// <remarks>
    /// SQLite keeps a statement's bindings across executions, so a value equal to the one already bound at its position
    /// (same text, same number with the same scale, same instant) is not bound again: exports repeat most columns row
    /// after row, and each bind is a native call.
    /// </remarks>
    public int Execute(object[] values)
    {
        for (var i = 0; i < Rows * Width; i++)
        {
            var value = values[i];
            if (_bound[i] is { } bound && SameBinding(bound, value))
            {
                continue;
            }

            _bound[i] = null;
            Check(Bind(i + 1, value));
            _bound[i] = value;
        }

        var step = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (step != raw.SQLITE_DONE)
        {
            Check(step);
        }

        return Rows;
    }

    public void Dispose() => raw.sqlite3_finalize(_statement);

    /// <summary>Whether binding <paramref name="value"/> would store exactly what binding <paramref name="bound"/> did.</summary>
    internal static bool SameBinding(object bound, object? value) => (bound, value) switch
    {
        _ when ReferenceEquals(bound, value) => true,
        (string a, string b) => string.Equals(a, b, StringComparison.Ordinal),
        (decimal a, decimal b) => a == b && a.Scale == b.Scale,
        (long a, long b) => a == b,
        (DateOnly a, DateOnly b) => a == b,
        (DateTimeOffset a, DateTimeOffset b) => a.UtcTicks == b.UtcTicks,
        (DBNull, DBNull) => true,
        _ => false,
    };

    private int Bind(int index, object? value) => value switch
    {
        null or DBNull => raw.sqlite3_bind_null(_statement, index),
        string s => BindText(index, s),
        long l => raw.sqlite3_bind_int64(_statement, index, l),
        int n => raw.sqlite3_bind_int64(_statement, index, n),
        short n => raw.sqlite3_bind_int64(_statement, index, n),
        bool b => raw.sqlite3_bind_int64(_statement, index, b ? 1 : 0),
        double d => raw.sqlite3_bind_double(_statement, index, d),
        float f => raw.sqlite3_bind_double(_statement, index, f),
        decimal m => BindFormatted(index, m, default),
        DateOnly d => BindDate(index, d),
        DateTimeOffset t => BindTimestamp(index, t.UtcDateTime),
        byte[] b => raw.sqlite3_bind_blob(_statement, index, b),
        var other => BindText(index, Convert.ToString(other, CultureInfo.InvariantCulture) ?? string.Empty),
    };

    private int BindText(int index, string text)
    {
        var max = System.Text.Encoding.UTF8.GetMaxByteCount(text.Length);
        if (max > _utf8.Length)
        {
            _utf8 = new byte[Math.Max(max, _utf8.Length * 2)];
        }

        var length = System.Text.Encoding.UTF8.GetBytes(text, _utf8);
        return raw.sqlite3_bind_text(_statement, index, _utf8.AsSpan(0, length));
    }

    private int BindFormatted<T>(int index, T value, ReadOnlySpan<char> format)
        where T : IUtf8SpanFormattable
    {
        Span<byte> buffer = stackalloc byte[64];
        return value.TryFormat(buffer, out var length, format, CultureInfo.InvariantCulture)
            ? raw.sqlite3_bind_text(_statement, index, buffer[..length])
            : BindText(index, string.Create(CultureInfo.InvariantCulture, $"{value}"));
    }

    private int BindDate(int index, DateOnly date)
    {
        Span<byte> buffer = stackalloc byte[10];
        SqliteSchema.FormatDate(date, buffer);
        return raw.sqlite3_bind_text(_statement, index, buffer);
    }

    private int BindTimestamp(int index, DateTime utc)
    {
        Span<byte> buffer = stackalloc byte[SqliteSchema.TimestampLength];
        SqliteSchema.FormatTimestamp(utc, buffer);
        return raw.sqlite3_bind_text(_statement, index, buffer);
    }

    private void Check(int rc)
    {
        if (rc is not (raw.SQLITE_OK or raw.SQLITE_DONE or raw.SQLITE_ROW))
        {
            throw new SqliteException(
                $"SQLite Error {rc}: '{raw.sqlite3_errmsg(_connection.Handle).utf8_to_string()}'.", rc, raw.sqlite3_extended_errcode(_connection.Handle));
        }
    }
}
