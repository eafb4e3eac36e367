using Microsoft.Data.Sqlite;

namespace Convergence.IntegrationTests.Support;

/// <summary>Reads a SQLite file of the data folder directly (unpooled, so nothing stays open after a call).</summary>
public sealed class ControlPlaneDb(string path)
{
    public string Path { get; } = path;

    public bool Exists => File.Exists(Path);

    public long Count(string table, string where = "1 = 1", params (string Name, object? Value)[] args) =>
        Convert.ToInt64(Scalar($"SELECT COUNT(*) FROM \"{table}\" WHERE {where}", args), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Rows of <c>table</c> for one org.</summary>
    public long CountForOrg(string table, string slug) => Count(table, "org_slug = $org", ("$org", slug));

    public object? Scalar(string sql, params (string Name, object? Value)[] args)
    {
        using var connection = Open();
        using var command = Command(connection, sql, args);
        return command.ExecuteScalar();
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
        return ReadRows(reader);
    }

    /// <summary>Every row of <paramref name="reader"/>, column name → value (NULL as null), whatever the database.</summary>
    public static IReadOnlyList<Dictionary<string, object?>> ReadRows(System.Data.Common.DbDataReader reader)
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
        [.. Rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").Select(r => (string)r["name"]!)];

    private SqliteConnection Open()
    {
        if (!File.Exists(Path))
        {
            throw new FileNotFoundException("No such database.", Path);
        }

        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, (string Name, object? Value)[] args)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in args)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }
}
