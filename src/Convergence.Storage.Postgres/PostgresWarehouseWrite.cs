using System.Globalization;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Convergence.Storage.Postgres;

/// <summary>
/// One write transaction on a dataset schema, with the semantics of the embedded adapter's write: the mode's
/// replacement first, rows (binary COPY) or a query's result next, data-quality checks on the uncommitted result, and
/// only <see cref="CommitAsync"/> makes it visible.
/// </summary>
/// <remarks>
/// The table is locked <c>SHARE ROW EXCLUSIVE</c> for the whole transaction: readers go on seeing the committed rows,
/// while a second write to the same table waits, so two runs of one slice can never interleave their deletes and
/// inserts. Upsert, and replace_partitions into a table holding rows, copy rows into a temporary staging table
/// (dropped at commit) and then delete and insert from it in set operations; the other writes copy straight into the
/// table (merge_partition's slice is deleted when the write begins).
/// </remarks>
internal sealed class PostgresWarehouseWrite(NpgsqlConnection connection, NpgsqlTransaction transaction, DatasetRef dataset, TableSchema schema, WriteSpec spec) : IWarehouseWrite
{
    private const int SampleSize = 5;

    /// <summary>The staging table's extra column: the row's position in the write, so the last row of a key wins.</summary>
    private const string RowNumberColumn = "convergence_row_number";

    private const string StagingTable = "convergence_write_staging";

    private Dictionary<string, int>? _columnIndex;
    private bool _stagingCreated;

    public TableSchema Schema => schema;

    private string Table => PostgresSchema.Qualified(dataset, schema.Name);

    /// <summary>Locks the (existing) table against other writers and applies the mode's replacement.</summary>
    public async Task PrepareAsync(CancellationToken cancellationToken)
    {
        await ExecuteAsync(new SqlQuery(PostgresWarehouse.SearchPath(dataset), Empty), cancellationToken);
        await ExecuteAsync(new SqlQuery($"LOCK TABLE {Table} IN SHARE ROW EXCLUSIVE MODE", Empty), cancellationToken);
        switch (spec.Mode)
        {
            case WriteMode.Truncate:
                // DELETE rather than TRUNCATE: TRUNCATE's exclusive lock would block readers until commit.
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
    /// The one row-writing path: each row is checked (required columns, the merge slice) and its values converted as
    /// <see cref="PostgresValues.Write"/> into one binary COPY (encoded by <see cref="PostgresCopyWriter"/>), the array
    /// of a row never kept.
    /// </summary>
    private async Task<long> WriteAsync(IReadOnlyList<string> names, IAsyncEnumerable<object?[]> rows, CancellationToken cancellationToken)
    {
        var columns = schema.Columns;
        var columnIndex = ColumnIndex();
        var source = new int[columns.Count];
        Array.Fill(source, -1);
        for (var n = 0; n < names.Count; n++)
        {
            source[columnIndex.TryGetValue(names[n], out var i) ? i : throw new ArgumentException($"Table {schema.Name} has no column '{names[n]}'.")] = n;
        }

        // replace_partitions into an empty table has nothing to delete, so its rows go straight in (as on SQLite).
        var staged = spec.Mode == WriteMode.Upsert
            || (spec.Mode == WriteMode.ReplacePartitions && await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM (SELECT 1 FROM {Table} LIMIT 1) AS r", Empty), cancellationToken) > 0);
        var target = Table;
        if (staged)
        {
            await PrepareStagingAsync(cancellationToken);
            target = StagingTable;
        }

        var columnList = string.Join(", ", columns.Select(c => PostgresSchema.Quote(c.Name)).Concat(staged ? [RowNumberColumn] : []));
        var merge = spec.Mode == WriteMode.MergePartition;
        var partition = merge ? source[columnIndex[spec.PartitionColumn!]] : -1;
        long count = 0;
        var fields = columns.Count + (staged ? 1 : 0);
        var copy = await connection.BeginRawBinaryCopyAsync($"COPY {target} ({columnList}) FROM STDIN (FORMAT BINARY)", cancellationToken);
        try
        {
            var writer = new PostgresCopyWriter(copy);
            writer.WriteHeader();
            await foreach (var row in rows.WithCancellation(cancellationToken))
            {
                cancellationToken.ThrowIfCancellationRequested();
                count++;
                writer.StartRow(fields);
                for (var i = 0; i < columns.Count; i++)
                {
                    var column = columns[i];
                    var value = source[i] < 0 ? null : row[source[i]];
                    if (value is null or DBNull)
                    {
                        if (column.Required)
                        {
                            throw new ArgumentException($"Row {count} for {schema.Name} has no value for required column '{column.Name}'.");
                        }

                        writer.WriteNull();
                    }
                    else
                    {
                        PostgresValues.Write(writer, value, column);
                    }
                }

                if (merge)
                {
                    EnsureInSlice(partition < 0 ? null : row[partition], count);
                }

                if (staged)
                {
                    writer.WriteInt64(count);
                }

                await writer.FlushIfFullAsync(cancellationToken);
            }

            await writer.CompleteAsync(cancellationToken);
        }
        catch
        {
            // Ends the COPY with an error instead of completing it with the rows sent so far; the write's
            // transaction is then rolled back by its owner.
            await AbandonAsync(copy);
            throw;
        }

        await copy.DisposeAsync();

        if (staged)
        {
            await MergeStagingAsync(cancellationToken);
        }

        return count;
    }

    /// <summary>
    /// Ends a COPY that failed on this side. When the server already refused it, or the connection is gone, cancelling
    /// fails as well; the error that stopped the rows is the one to report, so that second failure is dropped.
    /// </summary>
    private static async Task AbandonAsync(NpgsqlRawCopyStream copy)
    {
        try
        {
            await copy.CancelAsync();
            await copy.DisposeAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or IOException or InvalidOperationException or ObjectDisposedException)
        {
            // Dropped deliberately: see the summary.
        }
    }

    /// <summary>An empty staging table shaped like the table, created once per write and dropped at its end.</summary>
    private async Task PrepareStagingAsync(CancellationToken cancellationToken)
    {
        if (_stagingCreated)
        {
            await ExecuteAsync(new SqlQuery($"TRUNCATE {StagingTable}", Empty), cancellationToken);
            return;
        }

        var columns = string.Join(", ", schema.Columns.Select(c => $"{PostgresSchema.Quote(c.Name)} {PostgresSchema.TypeOf(c.Type)}").Append($"{RowNumberColumn} bigint NOT NULL"));
        await ExecuteAsync(new SqlQuery($"CREATE TEMPORARY TABLE {StagingTable} ({columns}) ON COMMIT DROP", Empty), cancellationToken);
        _stagingCreated = true;
    }

    /// <summary>
    /// Upsert: every key the rows carry is deleted, and the last row of each key inserted (as the embedded adapter's
    /// delete-before-each-row leaves it). replace_partitions: every partition the rows meet loses its earlier rows,
    /// then all the rows are inserted. Keys match NULL to NULL.
    /// </summary>
    private async Task MergeStagingAsync(CancellationToken cancellationToken)
    {
        var keys = spec.Keys.Select(k => schema.FindColumn(k)!).ToList();
        var match = string.Join(" AND ", keys.Select(k =>
            k.Required ? $"t.{PostgresSchema.Quote(k.Name)} = s.{PostgresSchema.Quote(k.Name)}" : $"t.{PostgresSchema.Quote(k.Name)} IS NOT DISTINCT FROM s.{PostgresSchema.Quote(k.Name)}"));
        var keyList = string.Join(", ", keys.Select(k => PostgresSchema.Quote(k.Name)));

        // A key column that leads a block-range (BRIN) index is also bounded by the staged rows' least and greatest
        // value: the planner cannot use a BRIN index for the join alone, and would scan the whole table.
        var ranged = keys.Where(k => schema.BlockRangeIndexes.Any(i => i[0] == k.Name)).Select(k => PostgresSchema.Quote(k.Name)).ToList();
        var bounds = ranged.Count == 0
            ? string.Empty
            : $"WITH bounds AS MATERIALIZED (SELECT {string.Join(", ", ranged.Select((k, i) => $"MIN({k}) AS lo{i}, MAX({k}) AS hi{i}"))} FROM {StagingTable}) ";
        var within = string.Concat(ranged.Select((k, i) => $" AND t.{k} >= (SELECT lo{i} FROM bounds) AND t.{k} <= (SELECT hi{i} FROM bounds)"));
        await ExecuteAsync(new SqlQuery($"{bounds}DELETE FROM {Table} AS t USING (SELECT DISTINCT {keyList} FROM {StagingTable}) AS s WHERE {match}{within}", Empty), cancellationToken);

        var columns = string.Join(", ", schema.Columns.Select(c => PostgresSchema.Quote(c.Name)));
        var select = spec.Mode == WriteMode.Upsert
            ? $"SELECT DISTINCT ON ({keyList}) {columns} FROM {StagingTable} ORDER BY {keyList}, {RowNumberColumn} DESC"
            : $"SELECT {columns} FROM {StagingTable}";
        await ExecuteAsync(new SqlQuery($"INSERT INTO {Table} ({columns}) {select}", Empty), cancellationToken);
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

    public async Task<long> WriteQueryAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        var returned = await QueryColumnsAsync(query, cancellationToken);
        var columns = string.Join(", ", returned.Select(PostgresSchema.Quote));
        // Cast to the table's types once, before the slice check, the key delete and the insert: a query written for
        // every adapter may return text where the table holds dates.
        var source = $"(SELECT {string.Join(", ", returned.Select(c => $"{Cast(c)} AS {PostgresSchema.Quote(c)}"))} FROM ({query.Text}) AS q) AS typed";
        if (spec.Mode == WriteMode.MergePartition)
        {
            var (condition, sliceParameters) = SliceCondition();
            var outside = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM {source} WHERE NOT ({condition}) OR {PostgresSchema.Quote(spec.PartitionColumn!)} IS NULL", Merge(query.Parameters, sliceParameters)), cancellationToken);
            if (outside > 0)
            {
                throw new InvalidOperationException($"The query returned {outside} row(s) outside the run's slice {spec.SliceStart:yyyy-MM-dd}..{spec.SliceEnd:yyyy-MM-dd} on {spec.PartitionColumn}; merge_partition replaces exactly that slice.");
            }
        }

        if (spec.Mode is WriteMode.Upsert or WriteMode.ReplacePartitions)
        {
            var keys = string.Join(", ", spec.Keys.Select(PostgresSchema.Quote));
            await ExecuteAsync(new SqlQuery($"DELETE FROM {Table} WHERE ({keys}) IN (SELECT {keys} FROM {source})", query.Parameters), cancellationToken);
        }

        return await ExecuteAsync(new SqlQuery($"INSERT INTO {Table} ({columns}) SELECT {columns} FROM {source}", query.Parameters), cancellationToken);
    }

    private string Cast(string column) => $"CAST(q.{PostgresSchema.Quote(column)} AS {PostgresSchema.TypeOf(schema.FindColumn(column)!.Type)})";

    /// <summary>
    /// The table columns the query fills: every column it returns must be one of the table's, every REQUIRED column must
    /// be among them, and NULLABLE ones it leaves out are written as NULL (as with row writes).
    /// </summary>
    private async Task<IReadOnlyList<string>> QueryColumnsAsync(SqlQuery query, CancellationToken cancellationToken)
    {
        var returned = new List<string>();
        await using (var command = CreateCommand(connection, transaction, query with { Text = $"SELECT * FROM ({query.Text}) AS q LIMIT 0" }))
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
        string Col(string name) => PostgresSchema.Quote(name);
        switch (check.Kind)
        {
            case DqCheckKind.RowCountMin:
            case DqCheckKind.RowCountMax:
                var rows = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM {Table} WHERE {scope}", parameters), cancellationToken);
                var passed = check.Kind == DqCheckKind.RowCountMin ? rows >= check.Value : rows <= check.Value;
                return new DqObservation(passed, rows.ToString(CultureInfo.InvariantCulture), $"{(check.Kind == DqCheckKind.RowCountMin ? ">=" : "<=")} {check.Value}", []);
            case DqCheckKind.Unique:
                var keyList = string.Join(", ", check.Columns.Select(Col));
                var duplicates = await ScalarAsync(new SqlQuery($"SELECT COUNT(*) FROM (SELECT 1 FROM {Table} WHERE {scope} GROUP BY {keyList} HAVING COUNT(*) > 1) AS d", parameters), cancellationToken);
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

    public Task CommitAsync(CancellationToken cancellationToken) => transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Disposing an uncommitted transaction rolls it back.
            await transaction.DisposeAsync();
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    internal static NpgsqlCommand CreateCommand(NpgsqlConnection connection, NpgsqlTransaction? transaction, SqlQuery query)
    {
        var command = new NpgsqlCommand(query.Text, connection, transaction);
        foreach (var (name, value) in query.Parameters)
        {
            command.Parameters.Add(PostgresValues.Parameter(name, value, PostgresValues.IsNullTested(query.Text, name)));
        }

        return command;
    }

    /// <summary>
    /// Reads rows with the types <see cref="RowValues"/> reads: <c>date</c> as <see cref="DateOnly"/>,
    /// <c>timestamptz</c> as a UTC <see cref="DateTimeOffset"/>, <c>numeric</c> as decimal, <c>jsonb</c> as text.
    /// </summary>
    internal static async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> ReadRowsAsync(NpgsqlCommand command, int maxRows, CancellationToken cancellationToken) =>
        await StreamRowsAsync(command, cancellationToken).Take(maxRows).ToListAsync(cancellationToken);

    /// <summary>
    /// The rows of <paramref name="command"/> as every adapter gives them (dates as <see cref="DateOnly"/>, timestamps as
    /// UTC <see cref="DateTimeOffset"/>, JSON as text), read as they are enumerated.
    /// </summary>
    internal static async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> StreamRowsAsync(
        NpgsqlCommand command, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var types = Enumerable.Range(0, reader.FieldCount).Select(reader.GetDataTypeName).ToArray();
        var names = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToArray();
        while (await reader.ReadAsync(cancellationToken))
        {
            var row = new Dictionary<string, object?>(names.Length, StringComparer.Ordinal);
            for (var i = 0; i < names.Length; i++)
            {
                row[names[i]] = reader.IsDBNull(i) ? null : types[i] switch
                {
                    "date" => reader.GetFieldValue<DateOnly>(i),
                    "timestamp with time zone" => reader.GetFieldValue<DateTimeOffset>(i),
                    "timestamp without time zone" => new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(i), DateTimeKind.Utc)),
                    "jsonb" or "json" => reader.GetString(i),
                    _ => reader.GetValue(i),
                };
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

    /// <summary>
    /// The run's slice on the partition column: whole days, inclusive. Date and timestamp columns compare with dates
    /// (the session runs in UTC); a text column compares with ISO text, as on the embedded adapter.
    /// </summary>
    private (string Condition, IReadOnlyDictionary<string, object?> Parameters) SliceCondition()
    {
        var column = PostgresSchema.Quote(spec.PartitionColumn!);
        var type = schema.FindColumn(spec.PartitionColumn!)!.Type;
        var start = spec.SliceStart!.Value;
        var endExclusive = spec.SliceEnd!.Value.AddDays(1);
        var (startValue, endValue, cast) = type is ColumnType.Date or ColumnType.Timestamp
            ? ((object)start, (object)endExclusive, "::date")
            : (start.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), endExclusive.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), "::text");
        return ($"{column} >= @slice_start{cast} AND {column} < @slice_end{cast}", new Dictionary<string, object?> { ["slice_start"] = startValue, ["slice_end"] = endValue });
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
