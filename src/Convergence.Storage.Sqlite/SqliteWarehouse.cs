using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>The embedded warehouse: one SQLite file per dataset.</summary>
internal sealed class SqliteWarehouse(SqliteDatasetFiles files) : IWarehouse
{
    /// <summary>SQLITE_BUSY and SQLITE_LOCKED: another connection holds the lock past the busy timeout.</summary>
    internal const int SqliteBusy = 5;
    internal const int SqliteLocked = 6;

    public string Kind => "sqlite";

    public Task<bool> DatasetExistsAsync(DatasetRef dataset, CancellationToken cancellationToken) =>
        Task.FromResult(File.Exists(files.PathOf(dataset)));

    public async Task<bool> CreateDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        if (File.Exists(files.PathOf(dataset)))
        {
            return false;
        }

        await using var connection = await files.OpenAsync(dataset, cancellationToken, SqliteOpenMode.ReadWriteCreate, SqliteDatasetFiles.WarehousePageSize);
        return true;
    }

    public Task DropDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        files.Delete(dataset);
        return Task.CompletedTask;
    }

    public async Task<IReadOnlyList<string>> ListTablesAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        var tables = await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", cancellationToken: cancellationToken));
        return [.. tables];
    }

    public async Task<bool> EnsureTableAsync(DatasetRef dataset, TableSchema schema, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var exists = await TableExistsAsync(connection, transaction, schema.Name, cancellationToken);
        if (!exists)
        {
            foreach (var statement in SqliteSchema.CreateStatements(schema))
            {
                await connection.ExecuteAsync(new CommandDefinition(statement, transaction: transaction, cancellationToken: cancellationToken));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return !exists;
    }

    public async Task DropTableAsync(DatasetRef dataset, string table, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition($"DROP TABLE IF EXISTS {SqliteSchema.Quote(table)}", cancellationToken: cancellationToken));
    }

    public async Task<IWarehouseWrite> BeginWriteAsync(DatasetRef dataset, TableSchema schema, WriteSpec spec, CancellationToken cancellationToken)
    {
        spec.Validate(schema);
        var connection = await OpenExistingAsync(dataset, cancellationToken);
        try
        {
            // BEGIN IMMEDIATE: the write lock is taken now, so the slice cannot change between delete and insert.
            var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            var write = new SqliteWarehouseWrite(connection, transaction, schema, spec);
            await write.PrepareAsync(cancellationToken);
            return write;
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is SqliteBusy or SqliteLocked)
        {
            await connection.DisposeAsync();
            throw new TransientException($"Dataset {dataset.Name} stayed locked by another writer past the busy timeout; the step may retry.", ex);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(DatasetRef dataset, SqlQuery query, int maxRows, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var command = SqliteWarehouseWrite.CreateCommand(connection, null, query);
        return await SqliteWarehouseWrite.ReadRowsAsync(command, maxRows, cancellationToken);
    }

    public async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> StreamAsync(
        DatasetRef dataset, SqlQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var command = SqliteWarehouseWrite.CreateCommand(connection, null, query);
        await foreach (var row in SqliteWarehouseWrite.StreamRowsAsync(command, cancellationToken))
        {
            yield return row;
        }
    }

    public async Task<long> CountRowsAsync(DatasetRef dataset, string table, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition($"SELECT COUNT(*) FROM {SqliteSchema.Quote(table)}", cancellationToken: cancellationToken));
    }

    public Task<WarehouseProbe> ProbeAsync(CancellationToken cancellationToken)
    {
        // Writable means a new dataset file can be created here; probe with a uniquely named file and remove it.
        var probe = Path.Combine(files.DatasetsDirectory, $".probe-{Guid.NewGuid():N}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose))
            {
            }

            return Task.FromResult(new WarehouseProbe(true, true, null));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Task.FromResult(new WarehouseProbe(Directory.Exists(files.DatasetsDirectory), false, $"cannot write to {files.DatasetsDirectory}: {ex.Message}"));
        }
    }

    internal static async Task<bool> TableExistsAsync(SqliteConnection connection, SqliteTransaction? transaction, string table, CancellationToken cancellationToken) =>
        await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @table", new { table }, transaction, cancellationToken: cancellationToken)) > 0;

    private async Task<SqliteConnection> OpenExistingAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        if (!File.Exists(files.PathOf(dataset)))
        {
            throw new InvalidOperationException($"Dataset '{dataset.Name}' does not exist.");
        }

        return await files.OpenAsync(dataset, cancellationToken);
    }
}
