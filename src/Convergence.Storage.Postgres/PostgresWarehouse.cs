using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>The server warehouse: one PostgreSQL schema per dataset in the warehouse database.</summary>
/// <remarks>
/// Queries name tables unqualified, as they do on every adapter: each transaction sets its <c>search_path</c> to the
/// dataset's schema (<c>SET LOCAL</c>, so a pooled connection never carries it to another dataset).
/// </remarks>
internal sealed class PostgresWarehouse(PostgresWarehouseSource source) : IWarehouse
{
    private NpgsqlDataSource DataSource => source.DataSource;

    public string Kind => "postgres";

    /// <summary>The tables this instance verified against their schemas; a write to one of them reads no catalogue.</summary>
    internal TableSchemaVerdicts Verdicts { get; } = new();

    public async Task<bool> DatasetExistsAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        return await SchemaExistsAsync(connection, dataset, cancellationToken);
    }

    public async Task<bool> CreateDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        if (await SchemaExistsAsync(connection, dataset, cancellationToken))
        {
            return false;
        }

        try
        {
            await ExecuteAsync(connection, null, $"CREATE SCHEMA {PostgresSchema.Quote(dataset.Name)}", cancellationToken);
            Verdicts.ForgetDataset(dataset);
            return true;
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DuplicateSchema or PostgresErrorCodes.UniqueViolation)
        {
            // Another instance created it between the check and the CREATE.
            return false;
        }
    }

    public async Task DropDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        Verdicts.ForgetDataset(dataset);
        await ExecuteAsync(connection, null, $"DROP SCHEMA IF EXISTS {PostgresSchema.Quote(dataset.Name)} CASCADE", cancellationToken);
    }

    public async Task<IReadOnlyList<string>> ListTablesAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var command = new NpgsqlCommand("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = @schema ORDER BY tablename COLLATE \"C\"", connection);
        command.Parameters.AddWithValue("schema", dataset.Name);
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    public async Task<bool> EnsureTableAsync(DatasetRef dataset, TableSchema schema, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
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
        await ExecuteAsync(connection, null, $"DROP TABLE IF EXISTS {PostgresSchema.Qualified(dataset, table)}", cancellationToken);
    }

    public async Task<IWarehouseWrite> BeginWriteAsync(DatasetRef dataset, TableSchema schema, WriteSpec spec, CancellationToken cancellationToken)
    {
        spec.Validate(schema);
        var connection = await OpenExistingAsync(dataset, cancellationToken);
        try
        {
            // The table is created or evolved in its own short transaction, so the DDL lock is not held for the whole
            // write; a table this instance already verified against this schema is not checked again (see TableSchemaVerdicts).
            if (!Verdicts.Matches(dataset, schema))
            {
                Verdicts.CountCheck();
                await using (var create = await connection.BeginTransactionAsync(cancellationToken))
                {
                    await EnsureTableAsync(connection, create, dataset, schema, cancellationToken);
                    await create.CommitAsync(cancellationToken);
                }

                Verdicts.Remember(dataset, schema);
            }

            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var write = new PostgresWarehouseWrite(connection, transaction, dataset, schema, spec);
            await write.PrepareAsync(cancellationToken);
            return write;
        }
        catch (NpgsqlException ex) when (ex.IsTransient)
        {
            await connection.DisposeAsync();
            throw new TransientException($"The write to {dataset.Name}.{schema.Name} could not start: {ex.Message}; the step may retry.", ex);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(DatasetRef dataset, SqlQuery query, int maxRows, CancellationToken cancellationToken) =>
        await StreamAsync(dataset, query, cancellationToken).Take(maxRows).ToListAsync(cancellationToken);

    public async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> StreamAsync(
        DatasetRef dataset, SqlQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, transaction, $"SET TRANSACTION READ ONLY; {SearchPath(dataset)}", cancellationToken);
        await using (var command = PostgresWarehouseWrite.CreateCommand(connection, transaction, query))
        {
            await foreach (var row in PostgresWarehouseWrite.StreamRowsAsync(command, cancellationToken))
            {
                yield return row;
            }
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<long> CountRowsAsync(DatasetRef dataset, string table, CancellationToken cancellationToken)
    {
        await using var connection = await OpenExistingAsync(dataset, cancellationToken);
        await using var command = new NpgsqlCommand($"SELECT COUNT(*) FROM {PostgresSchema.Qualified(dataset, table)}", connection);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task<WarehouseProbe> ProbeAsync(CancellationToken cancellationToken)
    {
        NpgsqlConnection connection;
        try
        {
            connection = await DataSource.OpenConnectionAsync(cancellationToken);
        }
        catch (NpgsqlException ex)
        {
            return new WarehouseProbe(false, false, $"cannot connect to the warehouse database: {ex.Message}");
        }

        await using (connection)
        {
            // Writable means a new dataset schema can be created; create one inside a transaction that is rolled back.
            try
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await ExecuteAsync(connection, transaction, $"CREATE SCHEMA {PostgresSchema.Quote($"probe_{Guid.NewGuid():N}")}", cancellationToken);
                await transaction.RollbackAsync(cancellationToken);
                return new WarehouseProbe(true, true, null);
            }
            catch (NpgsqlException ex)
            {
                return new WarehouseProbe(true, false, $"cannot create a schema in the warehouse database: {ex.Message}");
            }
        }
    }

    /// <summary>
    /// Creates the table and its indexes unless it exists, or brings it up to <paramref name="schema"/> as
    /// <see cref="TableSchemaDiff"/> decides (columns added, NOT NULL dropped, indexes created; PostgreSQL DDL is
    /// transactional, so a failure leaves the table as it was). Runs under a transaction-scoped advisory lock on the
    /// table's name: two concurrent <c>CREATE TABLE IF NOT EXISTS</c> can otherwise both pass the check and one fail on
    /// the catalog, and two instances would evolve the same table at once.
    /// </summary>
    internal static async Task<bool> EnsureTableAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, DatasetRef dataset, TableSchema schema, CancellationToken cancellationToken)
    {
        var qualified = PostgresSchema.Qualified(dataset, schema.Name);
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended(@name, 0))", connection, transaction))
        {
            command.Parameters.AddWithValue("name", qualified);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        bool exists;
        await using (var command = new NpgsqlCommand("SELECT to_regclass(@name) IS NOT NULL", connection, transaction))
        {
            command.Parameters.AddWithValue("name", qualified);
            exists = (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        if (!exists)
        {
            foreach (var statement in PostgresSchema.CreateStatements(dataset, schema))
            {
                await ExecuteAsync(connection, transaction, statement, cancellationToken);
            }

            return true;
        }

        var columns = new List<ExistingColumn>();
        await using (var command = new NpgsqlCommand(
            "SELECT column_name, data_type, is_nullable = 'NO' FROM information_schema.columns WHERE table_schema = @schema AND table_name = @table ORDER BY ordinal_position",
            connection,
            transaction))
        {
            command.Parameters.AddWithValue("schema", dataset.Name);
            command.Parameters.AddWithValue("table", schema.Name);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                columns.Add(new ExistingColumn(reader.GetString(0), reader.GetString(1), reader.GetBoolean(2)));
            }
        }

        var indexes = new List<string>();
        await using (var command = new NpgsqlCommand(
            "SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(@name)", connection, transaction))
        {
            command.Parameters.AddWithValue("name", qualified);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                indexes.Add(reader.GetString(0));
            }
        }

        var primaryKey = new List<string>();
        var uniqueKeys = new List<IReadOnlyList<string>>();
        await using (var command = new NpgsqlCommand(
            "SELECT i.indisprimary, ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) " +
            "FROM pg_catalog.pg_index i WHERE i.indrelid = to_regclass(@name) AND i.indisunique",
            connection,
            transaction))
        {
            command.Parameters.AddWithValue("name", qualified);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var keyColumns = reader.GetFieldValue<string[]>(1);
                if (reader.GetBoolean(0))
                {
                    primaryKey.AddRange(keyColumns);
                }
                else
                {
                    uniqueKeys.Add(keyColumns);
                }
            }
        }

        var diff = TableSchemaDiff.Compute(dataset, schema, columns, indexes, new ExistingKeys(primaryKey, uniqueKeys), PostgresSchema.CatalogTypeOf);
        var statements = diff.ColumnsToAdd.Select(c => PostgresSchema.AddColumn(dataset, schema, c))
            .Concat(diff.ColumnsToRelax.Select(c => PostgresSchema.DropNotNull(dataset, schema, c)))
            .Concat(diff.IndexesToCreate.Select(i => PostgresSchema.CreateIndex(dataset, schema, i)));
        foreach (var statement in statements)
        {
            await ExecuteAsync(connection, transaction, statement, cancellationToken);
        }

        // A key is added last: duplicates (or NULLs under a primary key) in the existing rows fail the statement, which
        // aborts the transaction, so the caller's rollback leaves the table as it was.
        var keys = new List<(string Kind, IReadOnlyList<string> Columns)>();
        if (diff.AddPrimaryKey)
        {
            keys.Add(("PRIMARY KEY", schema.PrimaryKey));
        }

        keys.AddRange(diff.UniqueKeysToAdd.Select(k => ("UNIQUE", k)));
        foreach (var (kind, keyColumns) in keys)
        {
            try
            {
                await ExecuteAsync(connection, transaction, $"ALTER TABLE {qualified} ADD {kind} ({string.Join(", ", keyColumns.Select(PostgresSchema.Quote))})", cancellationToken);
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.NotNullViolation)
            {
                throw TableSchemaDiff.DuplicatesFor(dataset, schema, kind, keyColumns, ex);
            }
        }

        return false;
    }

    /// <summary>Points unqualified names of the current transaction at the dataset's schema.</summary>
    internal static string SearchPath(DatasetRef dataset) => $"SET LOCAL search_path TO {PostgresSchema.Quote(dataset.Name)}";

    internal static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<bool> SchemaExistsAsync(NpgsqlConnection connection, DatasetRef dataset, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = @schema)", connection);
        command.Parameters.AddWithValue("schema", dataset.Name);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private async Task<NpgsqlConnection> OpenExistingAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            if (!await SchemaExistsAsync(connection, dataset, cancellationToken))
            {
                throw new InvalidOperationException($"Dataset '{dataset.Name}' does not exist.");
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
