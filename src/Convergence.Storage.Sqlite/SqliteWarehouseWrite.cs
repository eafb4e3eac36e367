using System.Globalization;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>
/// One write transaction on a dataset file: the write mode's delete runs first, rows or a query's result follow,
/// data-quality checks see the uncommitted result, and only <see cref="CommitAsync"/> makes it visible.
/// </summary>
internal sealed class SqliteWarehouseWrite(SqliteConnection connection, SqliteTransaction transaction, DatasetRef dataset, TableSchema schema, WriteSpec spec, TableSchemaVerdicts verdicts) : IWarehouseWrite
{
    private readonly SqliteTransactionScope _scope = new(connection, transaction);

    private const int SampleSize = 5;
    private Dictionary<string, int>? _columnIndex;
    private bool _checked;

    public TableSchema Schema => schema;

    private string Table => SqliteSchema.Quote(schema.Name);

    /// <summary>
    /// Creates or evolves the table, unless this adapter instance already verified it against this schema, and applies
    /// the mode's replacement: all rows, or the run's slice.
    /// </summary>
    /// <remarks>
    /// The check runs inside the write's transaction, so its verdict is remembered only once <see cref="CommitAsync"/>
    /// committed: a rolled-back write may have rolled back an evolution too.
    /// </remarks>
    public async Task PrepareAsync(CancellationToken cancellationToken)
    {
        if (!verdicts.Matches(dataset, schema))
        {
            verdicts.CountCheck();
            await SqliteWarehouse.EnsureTableAsync(connection, transaction, dataset, schema, cancellationToken);
            _checked = true;
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

    public Task<long> WriteRowsAsync(IAsyncEnumerable<IReadOnlyDictionary<string, object?>> rows, CancellationToken cancellationToken)
    {
        var columns = schema.Columns;
        var columnIndex = ColumnIndex();
        async IAsyncEnumerable<object?[]> Positional()
        {
            var values = new object?[columns.Count];
            await foreach (var row in rows.WithCancellation(cancellationToken))
            {
                foreach (var key in row.Keys)
                {
                    if (!columnIndex.ContainsKey(key))
                    {
                        throw new ArgumentException($"Table {schema.Name} has no column '{key}'.");
                    }
                }

                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = row.TryGetValue(columns[i].Name, out var v) ? v : null;
                }

                yield return values;
            }
        }

        return WriteAsync([.. columns.Select(c => c.Name)], Positional(), cancellationToken);
    }

    public Task<long> WriteRecordsAsync(IReadOnlyList<string> columns, IEnumerable<object?[]> rows, CancellationToken cancellationToken) =>
        WriteAsync(columns, rows.ToAsyncEnumerable(), cancellationToken);

    /// <summary>
    /// The one row-writing path: each row is checked and converted (required columns, the merge slice, values as
    /// <see cref="SqliteSchema.ToBulkValue"/>) in table column order, then inserted through one prepared INSERT rebound
    /// by position.
    /// </summary>
    private async Task<long> WriteAsync(IReadOnlyList<string> names, IAsyncEnumerable<object?[]> rows, CancellationToken cancellationToken)
    {
        var columns = schema.Columns;
        var width = columns.Count;
        var columnIndex = ColumnIndex();
        var source = new int[width];
        Array.Fill(source, -1);
        for (var n = 0; n < names.Count; n++)
        {
            source[columnIndex.TryGetValue(names[n], out var i) ? i : throw new ArgumentException($"Table {schema.Name} has no column '{names[n]}'.")] = n;
        }

        // An empty table needs no replacement deletes, and its secondary indexes are built once after the load (one
        // sort) rather than updated row by row; both happen inside the write's transaction, so a failed load still
        // leaves the table as it was, indexes included.
        var empty = !await ExistsAsync($"SELECT 1 FROM {Table} LIMIT 1", cancellationToken);
        var deferredIndexes = empty ? SqliteSchema.Indexes(schema).ToList() : [];
        foreach (var (name, _) in deferredIndexes)
        {
            await ExecuteAsync(new SqlQuery($"DROP INDEX IF EXISTS {name}", Empty), cancellationToken);
        }

        // One INSERT prepared once and rebound by position for every row. (Multi-row INSERTs measured slower: SQLite
        // then keeps a statement journal for each.) Upsert deletes each row's key before inserting it;
        // replace_partitions deletes a partition's earlier rows the first time the write meets it, before inserting
        // any row of it, so rows this write adds are never deleted.
        using var insert = new SqliteBulkInsert(connection, Table, [.. columns.Select(c => SqliteSchema.Quote(c.Name))], 1);
        var keyColumns = spec.Keys.Select(k => columnIndex[k]).ToArray();
        using var deletes = spec.Mode switch
        {
            WriteMode.Upsert => new KeyDeletes(connection, transaction, Table, spec.Keys, keyColumns, everyRow: true),
            WriteMode.ReplacePartitions when !empty => new KeyDeletes(connection, transaction, Table, spec.Keys, keyColumns, everyRow: false),
            _ => null,
        };

        // A bulk write into a filled table touches far more index pages than the default 2 MB cache holds: with a larger
        // cache for the write, SQLite stops spilling and re-reading them through the WAL; set back to the default when
        // the write ends. Into an empty table rows only append and indexes are built afterwards, and the default cache
        // serves better: the index build's sorter keeps up to the cache's size in memory and spills sorted runs to
        // temporary files beyond it, so peak memory stays flat in the row count (and the sort runs faster).
        var bulkCache = !empty;
        if (bulkCache)
        {
            SetCacheSize(BulkCacheKibibytes);
        }

        try
        {
            var values = new object[width];
            long count = 0;
            await foreach (var row in rows.WithCancellation(cancellationToken))
            {
                ConvertRow(row, source, values, count + 1);
                deletes?.Before(values, columns);
                cancellationToken.ThrowIfCancellationRequested();
                count += insert.Execute(values);
            }

            foreach (var (_, create) in deferredIndexes)
            {
                await ExecuteAsync(new SqlQuery(create, Empty), cancellationToken);
            }

            return count;
        }
        finally
        {
            if (bulkCache)
            {
                SetCacheSize(DefaultCacheKibibytes);
            }
        }
    }

    /// <summary>Checks one source row and converts it into <paramref name="values"/> in table column order.</summary>
    private void ConvertRow(object?[] row, int[] source, object[] values, long rowNumber)
    {
        var columns = schema.Columns;
        for (var i = 0; i < values.Length; i++)
        {
            var column = columns[i];
            var value = source[i] < 0 ? null : row[source[i]];
            if (value is null && column.Required)
            {
                throw new ArgumentException($"Row {rowNumber} for {schema.Name} has no value for required column '{column.Name}'.");
            }

            values[i] = SqliteSchema.ToBulkValue(value, column.Type, column.Name);
        }

        if (spec.Mode == WriteMode.MergePartition)
        {
            var partition = source[ColumnIndex()[spec.PartitionColumn!]];
            EnsureInSlice(partition < 0 ? null : row[partition], rowNumber);
        }
    }

    private Dictionary<string, int> ColumnIndex() => _columnIndex ??= IndexColumns();

    private Dictionary<string, int> IndexColumns()
    {
        var index = new Dictionary<string, int>(schema.Columns.Count, StringComparer.Ordinal);
        for (var i = 0; i < schema.Columns.Count; i++)
        {
            index[schema.Columns[i].Name] = i;
        }

        return index;
    }

    /// <summary>
    /// The DELETE of upsert (before every row) and replace_partitions (before the first row of each partition the
    /// write meets). Partitions are told apart by their stored values: NULL differs from an empty string, and
    /// decimals by their text (1.0 is not 1.00).
    /// </summary>
    private sealed class KeyDeletes : IDisposable
    {
        private readonly SqliteCommand _delete;
        private readonly SqliteParameter[] _keyValues;
        private readonly int[] _keyColumns;
        private readonly HashSet<object[]>? _seen;
        private object[] _probe;

        public KeyDeletes(SqliteConnection connection, SqliteTransaction transaction, string table, IReadOnlyList<string> keys, int[] keyColumns, bool everyRow)
        {
            _delete = connection.CreateCommand();
            _delete.Transaction = transaction;
            _delete.CommandText = $"DELETE FROM {table} WHERE {string.Join(" AND ", keys.Select((k, i) => $"{SqliteSchema.Quote(k)} IS $k{i}"))}";
            _keyValues = [.. keys.Select((_, i) => _delete.Parameters.Add(new SqliteParameter("$k" + i, null)))];
            _keyColumns = keyColumns;
            _seen = everyRow ? null : new HashSet<object[]>(PartitionComparer.Instance);
            _probe = new object[keyColumns.Length];
        }

        public void Before(object[] values, IReadOnlyList<ColumnSchema> columns)
        {
            for (var k = 0; k < _keyColumns.Length; k++)
            {
                _probe[k] = values[_keyColumns[k]];
            }

            if (_seen is not null)
            {
                if (!_seen.Add(_probe))
                {
                    return;
                }

                _probe = new object[_keyColumns.Length];
            }

            for (var k = 0; k < _keyColumns.Length; k++)
            {
                var key = columns[_keyColumns[k]];
                var keyValue = values[_keyColumns[k]];
                _keyValues[k].Value = keyValue is DBNull ? DBNull.Value : SqliteSchema.ToDb(keyValue, key.Type, key.Name);
            }

            _delete.ExecuteNonQuery();
        }

        public void Dispose() => _delete.Dispose();
    }

    private sealed class PartitionComparer : IEqualityComparer<object[]>
    {
        public static readonly PartitionComparer Instance = new();

        public bool Equals(object[]? x, object[]? y)
        {
            if (x is null || y is null || x.Length != y.Length)
            {
                return ReferenceEquals(x, y);
            }

            for (var i = 0; i < x.Length; i++)
            {
                if (!SqliteBulkInsert.SameBinding(x[i], y[i]) && (x[i] is decimal || !Equals(x[i], y[i])))
                {
                    return false;
                }
            }

            return true;
        }

        public int GetHashCode(object[] values)
        {
            var hash = default(HashCode);
            foreach (var value in values)
            {
                hash.Add(value is decimal m ? m.Scale : 0);
                hash.Add(value);
            }

            return hash.ToHashCode();
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

    public async Task CommitAsync(CancellationToken cancellationToken)
    {
        await _scope.CommitAsync(cancellationToken);
        if (_checked)
        {
            verdicts.Remember(dataset, schema);
        }
    }

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

    internal static async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> ReadRowsAsync(SqliteCommand command, int maxRows, CancellationToken cancellationToken) =>
        await StreamRowsAsync(command, cancellationToken).Take(maxRows).ToListAsync(cancellationToken);

    /// <summary>The rows of <paramref name="command"/>, column name → value (NULL as null), read as they are enumerated.</summary>
    internal static async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> StreamRowsAsync(
        SqliteCommand command, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var names = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToArray();
        while (await reader.ReadAsync(cancellationToken))
        {
            var row = new Dictionary<string, object?>(names.Length, StringComparer.Ordinal);
            for (var i = 0; i < names.Length; i++)
            {
                row[names[i]] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            yield return row;
        }
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

    private void EnsureInSlice(object? value, long rowNumber)
    {
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

    private async Task<bool> ExistsAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = CreateCommand(connection, transaction, new SqlQuery(sql, Empty));
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
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
