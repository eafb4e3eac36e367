using System.Diagnostics;
using Npgsql;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// The PostgreSQL server the tests use: <c>CONVERGENCE_TEST_POSTGRES</c> (a connection string; <c>.ci/run</c> starts a
/// throwaway cluster and sets it), else a cluster this process starts with <c>tools/pg/test-cluster.sh</c> on
/// 127.0.0.1. Each caller gets its own fresh database, so tests never see each other's rows.
/// </summary>
public static class PostgresServer
{
    private static readonly Lazy<string> Admin = new(Locate, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The server's administrative connection string (database <c>postgres</c>'s sibling test database).</summary>
    public static string AdminConnectionString => Admin.Value;

    /// <summary>Creates an empty database named after <paramref name="prefix"/> and returns its connection string.</summary>
    public static string CreateDatabase(string prefix)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)].ToLowerInvariant();
        using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            connection.Open();
            using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            command.ExecuteNonQuery();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database made by <see cref="CreateDatabase"/>, closing its connections (the app's pools) first.</summary>
    public static void DropDatabase(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        using var connection = new NpgsqlConnection(AdminConnectionString);
        connection.Open();
        using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        command.ExecuteNonQuery();
    }

    /// <summary>
    /// App settings that put both the control plane and the warehouse on PostgreSQL, each in a fresh database named after
    /// <paramref name="prefix"/>: the whole service on the shared-server deployment.
    /// </summary>
    public static Dictionary<string, string?> AppSettings(string prefix) => new(StringComparer.Ordinal)
    {
        ["CONVERGENCE_STORE"] = "postgres",
        ["CONVERGENCE_STORE_CONNECTION"] = CreateDatabase(prefix + "_cp"),
        ["CONVERGENCE_WAREHOUSE"] = "postgres",
        ["CONVERGENCE_WAREHOUSE_CONNECTION"] = CreateDatabase(prefix + "_wh"),
    };

    private static string Locate()
    {
        if (Environment.GetEnvironmentVariable("CONVERGENCE_TEST_POSTGRES") is { Length: > 0 } configured)
        {
            return configured;
        }

        var script = Path.Combine(RepositoryRoot(), "tools", "pg", "test-cluster.sh");
        Run(script, "start");
        return Run(script, "url").Trim();
    }

    private static string Run(string script, string verb)
    {
        using var process = Process.Start(new ProcessStartInfo("bash", [script, verb]) { RedirectStandardOutput = true, RedirectStandardError = true })
            ?? throw new InvalidOperationException("bash did not start");
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0
            ? output
            : throw new InvalidOperationException($"{script} {verb} failed ({process.ExitCode}): {error}{output}");
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Convergence.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Convergence.slnx not found above " + AppContext.BaseDirectory);
    }
}
