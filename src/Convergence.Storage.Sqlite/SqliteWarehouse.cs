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

    /// <summary>SQLITE_CONSTRAINT: a row breaks a key or NOT NULL.</summary>
    private const int SqliteConstraint = 19;

    public string Kind => "sqlite";

    /// <summary>The tables this instance verified against their schemas; a write to one of them reads no catalogue.</summary>
    internal TableSchemaVerdicts Verdicts { get; } = new();

    public Task<bool> DatasetExistsAsync(DatasetRef dataset, CancellationToken cancellationToken) =>
        Task.FromResult(File.Exists(files.PathOf(dataset)));

    public async Task<bool> CreateDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        if (File.Exists(files.PathOf(dataset)))
        {
            return false;
        }

        await using var connection = await files.OpenAsync(dataset, cancellationToken, SqliteOpenMode.ReadWriteCreate, SqliteDatasetFiles.WarehousePageSize);
        Verdicts.ForgetDataset(dataset);
        return true;
    }

    public Task DropDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        Verdicts.ForgetDataset(dataset);
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
        Verdicts.CountCheck();
        var created = await EnsureTableAsync(connection, transaction, dataset, schema, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        Verdicts.Remember(dataset, schema);
        return created;
    }

    public async Task DropTableAsync(DatasetRef dataset, string table, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        Verdicts.Forget(dataset, table);
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
            var write = new SqliteWarehouseWrite(connection, transaction, dataset, schema, spec, Verdicts);
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

    /// <summary>
    /// Creates the table unless it exists, or brings it up to <paramref name="schema"/> as <see cref="TableSchemaDiff"/>
    /// decides, inside <paramref name="transaction"/>: a failure rolls back to the table as it was.
    /// </summary>
    /// <remarks>
    /// SQLite adds a column in place but cannot drop a NOT NULL: a relaxed column rebuilds the table in the schema's
    /// shape under a temporary name, copies the rows, drops the old table, renames the new one and recreates the
    /// schema's indexes. The new shape carries the schema's keys: rows that break them fail the copy, and the
    /// transaction leaves the old table as it was. A missing primary key takes the same rebuild (SQLite adds none to an
    /// existing table); a missing unique key becomes a unique index.
    /// </remarks>
    internal static async Task<bool> EnsureTableAsync(SqliteConnection connection, SqliteTransaction transaction, DatasetRef dataset, TableSchema schema, CancellationToken cancellationToken)
    {
        Task Execute(string sql) => connection.ExecuteAsync(new CommandDefinition(sql, transaction: transaction, cancellationToken: cancellationToken));

        if (!await TableExistsAsync(connection, transaction, schema.Name, cancellationToken))
        {
            foreach (var statement in SqliteSchema.CreateStatements(schema))
            {
                await Execute(statement);
            }

            return true;
        }

        var columns = await connection.QueryAsync<(string Name, string Type, long NotNull)>(new CommandDefinition(
            "SELECT name, type, \"notnull\" FROM pragma_table_info(@table) ORDER BY cid", new { table = schema.Name }, transaction, cancellationToken: cancellationToken));
        var indexes = await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT name FROM pragma_index_list(@table)", new { table = schema.Name }, transaction, cancellationToken: cancellationToken));
        var primaryKey = await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT name FROM pragma_table_info(@table) WHERE pk > 0 ORDER BY pk", new { table = schema.Name }, transaction, cancellationToken: cancellationToken));
        var uniqueKeys = new List<IReadOnlyList<string>>();
        foreach (var index in await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT name FROM pragma_index_list(@table) WHERE \"unique\" = 1 AND origin <> 'pk'", new { table = schema.Name }, transaction, cancellationToken: cancellationToken)))
        {
            uniqueKeys.Add([.. await connection.QueryAsync<string>(new CommandDefinition(
                "SELECT name FROM pragma_index_info(@index) ORDER BY seqno", new { index }, transaction, cancellationToken: cancellationToken))]);
        }

        var diff = TableSchemaDiff.Compute(
            dataset,
            schema,
            [.. columns.Select(c => new ExistingColumn(c.Name, c.Type, c.NotNull != 0))],
            [.. indexes],
            new ExistingKeys([.. primaryKey], uniqueKeys),
            SqliteSchema.TypeOf);
        if (diff.ColumnsToRelax.Count > 0 || diff.AddPrimaryKey)
        {
            var table = SqliteSchema.Quote(schema.Name);
            var temporary = $"_evolving_{schema.Name}";
            temporary = temporary.Length > SqlIdentifier.MaxLength ? temporary[..SqlIdentifier.MaxLength] : temporary;
            var kept = string.Join(", ", columns.Select(c => SqliteSchema.Quote(c.Name)));
            await Execute($"DROP TABLE IF EXISTS {SqliteSchema.Quote(temporary)}");
            await Execute(SqliteSchema.CreateTable(schema, temporary));
            try
            {
                await Execute($"INSERT INTO {SqliteSchema.Quote(temporary)} ({kept}) SELECT {kept} FROM {table}");
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteConstraint && diff.AddPrimaryKey)
            {
                throw TableSchemaDiff.DuplicatesFor(dataset, schema, "PRIMARY KEY", schema.PrimaryKey, ex);
            }

            await Execute($"DROP TABLE {table}");
            await Execute($"ALTER TABLE {SqliteSchema.Quote(temporary)} RENAME TO {table}");
            foreach (var (_, create) in SqliteSchema.Indexes(schema))
            {
                await Execute(create);
            }

            return false;
        }

        foreach (var column in diff.ColumnsToAdd)
        {
            await Execute(SqliteSchema.AddColumn(schema, column));
        }

        foreach (var index in diff.IndexesToCreate)
        {
            await Execute(SqliteSchema.Index(schema, index).Create);
        }

        // A missing unique key becomes a unique index (SQLite adds no constraint to an existing table); duplicates in the
        // existing rows fail it inside the caller's transaction, which then leaves the table as it was.
        foreach (var key in diff.UniqueKeysToAdd)
        {
            try
            {
                await Execute(SqliteSchema.UniqueIndex(schema, key));
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteConstraint)
            {
                throw TableSchemaDiff.DuplicatesFor(dataset, schema, "UNIQUE", key, ex);
            }
        }

        return false;
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
