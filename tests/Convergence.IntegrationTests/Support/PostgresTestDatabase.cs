using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Convergence.Storage.Postgres;
using Npgsql;

namespace Convergence.IntegrationTests.Support;

/// <summary>Fresh PostgreSQL databases for adapter tests, with the central dataset's tables created from the shipped schemas.</summary>
public static class PostgresTestDatabase
{
    /// <summary>A new database holding schema <c>organizations</c> with every bootstrap table; the source's search path points there.</summary>
    public static async Task<PostgresControlPlaneSource> CreateControlPlaneAsync(string prefix)
    {
        var connection = PostgresServer.CreateDatabase(prefix);
        var builder = new NpgsqlConnectionStringBuilder(connection) { SearchPath = DatasetRef.CentralName };
        var source = new PostgresControlPlaneSource(NpgsqlDataSource.Create(builder.ConnectionString));
        await using var open = await source.DataSource.OpenConnectionAsync();
        await using (var schema = new NpgsqlCommand($"CREATE SCHEMA {PostgresSchema.Quote(DatasetRef.CentralName)}", open))
        {
            await schema.ExecuteNonQueryAsync();
        }

        foreach (var table in TableSchema.LoadDirectory(BootstrapSchemas()))
        {
            foreach (var statement in PostgresSchema.CreateStatements(DatasetRef.Central, table))
            {
                await using var command = new NpgsqlCommand(statement, open);
                await command.ExecuteNonQueryAsync();
            }
        }

        return source;
    }

    private static string BootstrapSchemas() => Path.Combine(AppContext.BaseDirectory, "configs", "setup", "bootstrap", "schemas");
}
