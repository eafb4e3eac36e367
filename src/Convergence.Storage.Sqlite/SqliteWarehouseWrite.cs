using System.Globalization;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>
/// One write transaction on a dataset file: the write mode's delete runs first, rows or a query's result follow,
/// data-quality checks see the uncommitted result, and only <see cref="CommitAsync"/> makes it visible.
/// </summary>
internal sealed class SqliteWarehouseWrite(SqliteConnection connection, SqliteTransaction transaction, TableSchema schema, WriteSpec spec) : IWarehouseWrite
{
    private readonly SqliteTransactionScope _scope = new(connection, transaction);

    private const int SampleSize = 5;
    public TableSchema Schema => schema;

    private string Table => SqliteSchema.Quote(schema.Name);

    /// <summary>Creates the table if needed and applies the mode's replacement: all rows, or the run's slice.</summary>
    public async Task PrepareAsync(CancellationToken cancellationToken)
    {
        foreach (var statement in SqliteSchema.CreateStatements(schema))
        {
            await ExecuteAsync(new SqlQuery(statement, Empty), cancellationToken);
        }

        switch (spec.Mode)
        {
            case WriteMode.Truncate:
                await ExecuteAsync(new SqlQuery($"DELETE FROM {Table}", Empty), cancellationToken);
                break;
            case WriteMode.MergePartition:
                var (condition, parameters) = SliceCondition();
                await ExecuteAsync(new SqlQuery($"DELETE FROM {Table} WHERE {condition}", parameters), cancellationToken);
                break;
        }
    }

    public async Task<long> WriteRowsAsync(IAsyncEnumerable<IReadOnlyDictionary<string, object?>> rows, CancellationToken cancellationToken)
    {
        var columns = schema.Columns;
        var width = columns.Count;
        var columnIndex = new Dictionary<string, int>(width, StringComparer.Ordinal);
        for (var i = 0; i < width; i++)
        {
            columnIndex[columns[i].Name] = i;
        }

        // One INSERT prepared once and rebound by position for every row. (Multi-row INSERTs measured slower: SQLite
        // then keeps a statement journal for each.) Upsert deletes each row's key before inserting it;
        // replace_partitions deletes a partition's earlier rows the first time the write meets it, before inserting
        // any row of it, so rows this write adds are never deleted.
        using var insert = new SqliteBulkInsert(connection, Table, [.. columns.Select(c => SqliteSchema.Quote(c.Name))], 1);
        var values = new object[width];

        SqliteCommand? delete = null;
        SqliteParameter[] keyValues = [];
        var keyColumns = spec.Keys.Select(k => columnIndex[k]).ToArray();
        HashSet<string>? seenPartitions = spec.Mode == WriteMode.ReplacePartitions ? new(StringComparer.Ordinal) : null;
        if (spec.Mode is WriteMode.Upsert or WriteMode.ReplacePartitions)
        {
            delete = connection.CreateCommand();
            delete.Transaction = transaction;
            delete.CommandText = $"DELETE FROM {Table} WHERE {string.Join(" AND ", spec.Keys.Select((k, i) => $"{SqliteSchema.Quote(k)} IS $k{i}"))}";
            keyValues = [.. spec.Keys.Select((_, i) => delete.Parameters.Add(new SqliteParameter("$k" + i, null)))];
        }

        // A bulk write touches far more pages than the default 2 MB cache holds: with a larger cache for the write, SQLite
        // stops spilling and re-reading index pages through the WAL. Set back to the default when the write ends.
        SetCacheSize(BulkCacheKibibytes);
        try
        {
            long count = 0;
            await foreach (var row in rows.WithCancellation(cancellationToken))
            {
                foreach (var key in row.Keys)
                {
                    if (!columnIndex.ContainsKey(key))
                    {
                        throw new ArgumentException($"Table {schema.Name} has no column '{key}'.");
                    }
                }

                for (var i = 0; i < width; i++)
                {
                    var column = columns[i];
                    var value = row.TryGetValue(column.Name, out var v) ? v : null;
                    if (value is null && column.Required)
                    {
                        throw new ArgumentException($"Row {count + 1} for {schema.Name} has no value for required column '{column.Name}'.");
                    }

                    values[i] = SqliteSchema.ToBulkValue(value, column.Type, column.Name);
                }

                if (spec.Mode == WriteMode.MergePartition)
                {
                    EnsureInSlice(row, count + 1);
                }

                if (delete is not null && (seenPartitions is null || seenPartitions.Add(PartitionKey(values, keyColumns))))
                {
                    for (var k = 0; k < keyColumns.Length; k++)
                    {
                        var key = columns[keyColumns[k]];
                        var keyValue = values[keyColumns[k]];
                        keyValues[k].Value = keyValue is DBNull ? DBNull.Value : SqliteSchema.ToDb(keyValue, key.Type, key.Name);
                    }

                    delete.ExecuteNonQuery();
                }

                cancellationToken.ThrowIfCancellationRequested();
                count += insert.Execute(values);
            }

            return count;
        }
        finally
        {
            if (delete is not null)
            {
                await delete.DisposeAsync();
            }

            SetCacheSize(DefaultCacheKibibytes);
        }
    }

    /// <summary>Page cache of a connection while it writes rows in bulk, and SQLite's default.</summary>
    private const int BulkCacheKibibytes = 64 * 1024;
    private const int DefaultCacheKibibytes = 2000;

    private void SetCacheSize(int kibibytes)
    {
        using var pragma = connection.CreateCommand();
        pragma.Transaction = transaction;
        pragma.CommandText = $"PRAGMA cache_size = -{kibibytes.ToString(CultureInfo.InvariantCulture)}";
        pragma.ExecuteNonQuery();
    }

    /// <summary>The partition of a row as text; NULL differs from an empty string.</summary>
    private static string PartitionKey(object[] values, int[] keyColumns)
    {
        var parts = new string[keyColumns.Length];
        for (var k = 0; k < keyColumns.Length; k++)
        {
            var value = values[keyColumns[k]];
            parts[k] = value is DBNull ? "\u0000" : "=" + (value is DateOnly d ? d.ToString("O", CultureInfo.InvariantCulture) : Convert.ToString(value, CultureInfo.InvariantCulture));
        }

        return string.Join('\u001f', parts);
    }

    public async Task<long> WriteQueryAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        var source = $"(SELECT * FROM ({query.Text}))";
        var columns = string.Join(", ", (await QueryColumnsAsync(query, cancellationToken)).Select(SqliteSchema.Quote));
        if (spec.Mode == WriteMode.MergePartition)
        {
            var (condition, sliceParameters) = SliceCondition();
            var outside = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM {source} WHERE NOT ({condition}) OR {SqliteSchema.Quote(spec.PartitionColumn!)} IS NULL", Merge(query.Parameters, sliceParameters)), cancellationToken);
            if (outside > 0)
            {
                throw new InvalidOperationException($"The query returned {outside} row(s) outside the run's slice {spec.SliceStart:yyyy-MM-dd}..{spec.SliceEnd:yyyy-MM-dd} on {spec.PartitionColumn}; merge_partition replaces exactly that slice.");
            }
        }

        if (spec.Mode is WriteMode.Upsert or WriteMode.ReplacePartitions)
        {
            var keys = string.Join(", ", spec.Keys.Select(SqliteSchema.Quote));
            await ExecuteAsync(new SqlQuery($"DELETE FROM {Table} WHERE ({keys}) IN (SELECT {keys} FROM {source})", query.Parameters), cancellationToken);
        }

        return await ExecuteAsync(new SqlQuery($"INSERT INTO {Table} ({columns}) SELECT {columns} FROM {source}", query.Parameters), cancellationToken);
    }

    /// <summary>
    /// The table columns the query fills: every column it returns must be one of the table's, every REQUIRED column must
    /// be among them, and NULLABLE ones it leaves out are written as NULL (as with row writes).
    /// </summary>
    private async Task<IReadOnlyList<string>> QueryColumnsAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        var returned = new List<string>();
        await using (var command = CreateCommand(connection, transaction, query with { Text = $"SELECT * FROM ({query.Text}) LIMIT 0" }))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            for (var i = 0; i < reader.FieldCount; i++)
            {
                returned.Add(reader.GetName(i));
            }
        }

        var unknown = returned.Where(c => schema.FindColumn(c) is null).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidOperationException($"The query returns column(s) {string.Join(", ", unknown)} that table {schema.Name} does not have.");
        }

        var missing = schema.Columns.Where(c => c.Required && !returned.Contains(c.Name)).Select(c => c.Name).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException($"The query does not return required column(s) {string.Join(", ", missing)} of table {schema.Name}.");
        }

        return returned;
    }

    public async Task<DqObservation> EvaluateAsync(DqCheckDefinition check, IReadOnlyDictionary<string, object?> expressionParameters, CancellationToken cancellationToken)
    {
        var (scope, parameters) = spec.Mode == WriteMode.MergePartition ? SliceCondition() : ("1 = 1", Empty);
        string Col(string name) => SqliteSchema.Quote(name);
        switch (check.Kind)
        {
            case DqCheckKind.RowCountMin:
            case DqCheckKind.RowCountMax:
                var rows = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM {Table} WHERE {scope}", parameters), cancellationToken);
                var passed = check.Kind == DqCheckKind.RowCountMin ? rows >= check.Value : rows <= check.Value;
                return new DqObservation(passed, rows.ToString(CultureInfo.InvariantCulture), $"{(check.Kind == DqCheckKind.RowCountMin ? ">=" : "<=")} {check.Value}", []);
            case DqCheckKind.Unique:
                var keyList = string.Join(", ", check.Columns.Select(Col));
                var duplicates = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM (SELECT 1 FROM {Table} WHERE {scope} GROUP BY {keyList} HAVING COUNT(*) > 1)", parameters), cancellationToken);
                var dupSample = duplicates == 0 ? [] : await SampleAsync(new SqlQuery($"SELECT {keyList}, COUNT(*) AS occurrences FROM {Table} WHERE {scope} GROUP BY {keyList} HAVING COUNT(*) > 1 LIMIT {SampleSize}", parameters), cancellationToken);
                return new DqObservation(duplicates == 0, $"{duplicates} duplicated key(s)", "0", dupSample);
            default:
                var (failing, extra) = check.Kind switch
                {
                    DqCheckKind.NotNull => ($"{Col(check.Column!)} IS NULL", Empty),
                    DqCheckKind.AcceptedValues => (
                        $"{Col(check.Column!)} IS NOT NULL AND {Col(check.Column!)} NOT IN ({string.Join(", ", check.Values.Select((_, i) => "@dq_v" + i))})",
                        (IReadOnlyDictionary<string, object?>)check.Values.Select((v, i) => ("dq_v" + i, (object?)v)).ToDictionary(p => p.Item1, p => p.Item2)),
                    DqCheckKind.Expression => ($"NOT ({check.Expression})", expressionParameters),
                    _ => throw new ArgumentOutOfRangeException(nameof(check), check.Kind, "Unknown check."),
                };
                var all = Merge(parameters, extra);
                var bad = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM {Table} WHERE {scope} AND ({failing})", all), cancellationToken);
                var sample = bad == 0 ? [] : await SampleAsync(new SqlQuery($"SELECT * FROM {Table} WHERE {scope} AND ({failing}) LIMIT {SampleSize}", all), cancellationToken);
                return new DqObservation(bad == 0, $"{bad} failing row(s)", "0", sample);
        }
    }

    public Task CommitAsync(CancellationToken cancellationToken) => _scope.CommitAsync(cancellationToken);

    public ValueTask DisposeAsync() => _scope.DisposeAsync();

    internal static SqliteCommand CreateCommand(SqliteConnection connection, SqliteTransaction? transaction, SqlQuery query)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = query.Text;
        foreach (var (name, value) in query.Parameters)
        {
            command.Parameters.AddWithValue("@" + name, value switch
            {
                null => DBNull.Value,
                DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                DateTimeOffset t => SqliteSchema.Timestamp(t)!,
                bool b => b ? 1 : 0,
                decimal m => m.ToString(CultureInfo.InvariantCulture),
                _ => value,
            });
        }

        return command;
    }

    internal static async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> ReadRowsAsync(SqliteCommand command, int maxRows, CancellationToken cancellationToken)
    {
        var rows = new List<IReadOnlyDictionary<string, object?>>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (rows.Count < maxRows && await reader.ReadAsync(cancellationToken))
        {
            var row = new Dictionary<string, object?>(reader.FieldCount, StringComparer.Ordinal);
            for (var i = 0; i < reader.FieldCount; i++)
            {
                row[reader.GetName(i)] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    private static readonly IReadOnlyDictionary<string, object?> Empty = new Dictionary<string, object?>();

    private static IReadOnlyDictionary<string, object?> Merge(IReadOnlyDictionary<string, object?> a, IReadOnlyDictionary<string, object?> b)
    {
        var merged = new Dictionary<string, object?>(a, StringComparer.Ordinal);
        foreach (var (key, value) in b)
        {
            merged[key] = value;
        }

        return merged;
    }

    /// <summary>The run's slice on the partition column: whole days, inclusive, as text comparisons on ISO values.</summary>
    private (string Condition, IReadOnlyDictionary<string, object?> Parameters) SliceCondition()
    {
        var column = SqliteSchema.Quote(spec.PartitionColumn!);
        var start = spec.SliceStart!.Value.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var endExclusive = spec.SliceEnd!.Value.AddDays(1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        return ($"{column} >= @slice_start AND {column} < @slice_end", new Dictionary<string, object?> { ["slice_start"] = start, ["slice_end"] = endExclusive });
    }

    private void EnsureInSlice(IReadOnlyDictionary<string, object?> row, long rowNumber)
    {
        var value = row.TryGetValue(spec.PartitionColumn!, out var v) ? v : null;
        DateOnly? day = value switch
        {
            DateOnly d => d,
            DateTimeOffset t => DateOnly.FromDateTime(t.UtcDateTime),
            DateTime t => DateOnly.FromDateTime(t),
            string s when DateOnly.TryParseExact(s.Length >= 10 ? s[..10] : s, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) => d,
            _ => null,
        };
        if (day is null || day < spec.SliceStart || day > spec.SliceEnd)
        {
            throw new InvalidOperationException($"Row {rowNumber} has {spec.PartitionColumn}={value ?? "null"}, outside the run's slice {spec.SliceStart:yyyy-MM-dd}..{spec.SliceEnd:yyyy-MM-dd}; merge_partition replaces exactly that slice.");
        }
    }

    private async Task<int> ExecuteAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        await using var command = CreateCommand(connection, transaction, query);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<long> ScalarAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        await using var command = CreateCommand(connection, transaction, query);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    private async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> SampleAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        await using var command = CreateCommand(connection, transaction, query);
        return await ReadRowsAsync(command, SampleSize, cancellationToken);
    }
}
