using System.Data.Common;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// Reads (and, for arranging state the API cannot reach, writes) the control plane directly, on whichever store the
/// app runs: its SQLite file in the data folder, or its PostgreSQL database (schema <c>organizations</c>). Each call
/// opens and closes its own unpooled connection, so nothing stays open after a call.
/// </summary>
/// <remarks>
/// Tests write one SQL text for both: parameters as <c>$name</c> (rewritten to <c>@name</c> for Npgsql), booleans as
/// <c>TRUE</c>/<c>FALSE</c>. Values come back in SQLite's representation on both — integers and booleans as
/// <see cref="long"/>, timestamps as the store's ISO 8601 text — so expectations do not depend on the backend. Text
/// parameters go to PostgreSQL untyped, so the server casts them to the column's type (a timestamp written as text).
/// </remarks>
public sealed partial class ControlPlaneDb
{
    private const string TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    private readonly string? _postgres;

    private ControlPlaneDb(string path, string? postgres)
    {
        Path = path;
        _postgres = postgres;
    }

    /// <summary>The SQLite file, or the PostgreSQL database's name.</summary>
    public string Path { get; }

    public bool IsPostgres => _postgres is not null;

    public bool Exists => IsPostgres
        ? Convert.ToBoolean(Scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'organizations')"), CultureInfo.InvariantCulture)
        : File.Exists(Path);

    public static ControlPlaneDb Sqlite(string path) => new(path, null);

    public static ControlPlaneDb Postgres(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { SearchPath = "organizations", Pooling = false };
        return new(builder.Database ?? "postgres", builder.ConnectionString);
    }

    public long Count(string table, string where = "1 = 1", params (string Name, object? Value)[] args) =>
        Convert.ToInt64(Scalar($"SELECT COUNT(*) FROM \"{table}\" WHERE {where}", args), CultureInfo.InvariantCulture);

    /// <summary>Rows of <c>table</c> for one org.</summary>
    public long CountForOrg(string table, string slug) => Count(table, "org_slug = $org", ("$org", slug));

    public object? Scalar(string sql, params (string Name, object? Value)[] args)
    {
        using var connection = Open();
        using var command = Command(connection, sql, args);
        return Normalise(command.ExecuteScalar());
    }

    /// <summary>Runs a write (a test arranging state the API cannot reach, such as an expired subscription); returns rows changed.</summary>
    public int Execute(string sql, params (string Name, object? Value)[] args)
    {
        using var connection = Open();
        using var command = Command(connection, sql, args);
        return command.ExecuteNonQuery();
    }

    public IReadOnlyList<Dictionary<string, object?>> Rows(string sql, params (string Name, object? Value)[] args)
    {
        using var connection = Open();
        using var command = Command(connection, sql, args);
        using var reader = command.ExecuteReader();
        return [.. ReadRows(reader).Select(row => row.ToDictionary(kv => kv.Key, kv => Normalise(kv.Value), StringComparer.Ordinal))];
    }

    /// <summary>Every row of <paramref name="reader"/>, column name → value (NULL as null), whatever the database.</summary>
    public static IReadOnlyList<Dictionary<string, object?>> ReadRows(DbDataReader reader)
    {
        var rows = new List<Dictionary<string, object?>>();
        while (reader.Read())
        {
            var row = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (var i = 0; i < reader.FieldCount; i++)
            {
                row[reader.GetName(i)] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    public IReadOnlyList<string> Tables() =>
        [.. Rows(IsPostgres
                ? "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'organizations' ORDER BY table_name"
                : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .Select(r => (string)r["name"]!)];

    /// <summary>Every value of every control-plane table as text, one per line (a test searching the stored state for a secret).</summary>
    public string AllText() =>
        string.Join("\n", Tables().SelectMany(table => Rows($"SELECT * FROM \"{table}\"")).SelectMany(row => row.Values).Select(value => value switch
        {
            byte[] bytes => Convert.ToBase64String(bytes) + "\n" + System.Text.Encoding.UTF8.GetString(bytes),
            _ => Convert.ToString(value, CultureInfo.InvariantCulture),
        }));

    /// <summary>A value in SQLite's representation (see the remarks on the class).</summary>
    private static object? Normalise(object? value) => value switch
    {
        null or DBNull => null,
        int i => (long)i,
        short s => (long)s,
        bool b => b ? 1L : 0L,
        DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        DateTime t => DateTime.SpecifyKind(t, DateTimeKind.Utc).ToString(TimestampFormat, CultureInfo.InvariantCulture),
        DateTimeOffset t => t.UtcDateTime.ToString(TimestampFormat, CultureInfo.InvariantCulture),
        _ => value,
    };

    [GeneratedRegex(@"\$(?=[A-Za-z_])")]
    private static partial Regex SqliteParameter();

    private DbConnection Open()
    {
        if (_postgres is not null)
        {
            var postgres = new NpgsqlConnection(_postgres);
            postgres.Open();
            return postgres;
        }

        if (!File.Exists(Path))
        {
            throw new FileNotFoundException("No such database.", Path);
        }

        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private DbCommand Command(DbConnection connection, string sql, (string Name, object? Value)[] args)
    {
        var command = connection.CreateCommand();
        command.CommandText = IsPostgres ? SqliteParameter().Replace(sql, "@") : sql;
        foreach (var (name, value) in args)
        {
            if (command is NpgsqlCommand npgsql)
            {
                var parameter = npgsql.Parameters.AddWithValue(name.TrimStart('$', '@'), value ?? DBNull.Value);
                if (value is string)
                {
                    parameter.NpgsqlDbType = NpgsqlDbType.Unknown;
                }
            }
            else
            {
                ((SqliteCommand)command).Parameters.AddWithValue(name, value ?? DBNull.Value);
            }
        }

        return command;
    }
}
