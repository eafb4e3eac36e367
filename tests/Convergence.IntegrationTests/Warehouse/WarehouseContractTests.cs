using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Convergence.Storage.Postgres;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Warehouse;

/// <summary>
/// What every <see cref="IWarehouse"/> adapter must do alike: the write modes and their reruns, atomic writes, exact
/// values, query writes, data-quality checks and datasets. Each adapter runs the whole class through a subclass; every
/// test works in a dataset of its own.
/// </summary>
public abstract class WarehouseContractTests(IWarehouse warehouse) : IAsyncLifetime
{
    protected static readonly TableSchema Costs = new(
        "contract_costs",
        null,
        [
            new ColumnSchema("account", ColumnType.String, true, null),
            new ColumnSchema("day", ColumnType.Date, true, null),
            new ColumnSchema("amount", ColumnType.Numeric, false, null),
            new ColumnSchema("at", ColumnType.Timestamp, false, null),
            new ColumnSchema("billable", ColumnType.Bool, false, null),
            new ColumnSchema("labels", ColumnType.Json, false, null),
            new ColumnSchema("ratio", ColumnType.Float64, false, null),
            new ColumnSchema("line", ColumnType.Int64, true, null),
        ],
        [],
        [],
        [["account", "day"]]);

    protected static readonly string[] Columns = ["account", "day", "amount", "line"];
    protected static readonly DateOnly Nov1 = new(2020, 11, 1);
    protected static readonly DateOnly Nov2 = new(2020, 11, 2);
    private static readonly DateOnly Nov3 = new(2020, 11, 3);
    private static readonly IReadOnlyDictionary<string, object?> NoParameters = new Dictionary<string, object?>();

    protected IWarehouse Warehouse { get; } = warehouse;

    protected DatasetRef Dataset { get; } = DatasetRef.ForOrg(OrgSlug.From($"wc_{Guid.NewGuid():N}"[..20]), DeploymentEnvironment.Development);

    public async Task InitializeAsync()
    {
        (await Warehouse.CreateDatasetAsync(Dataset, CancellationToken.None)).ShouldBeTrue();
        (await Warehouse.EnsureTableAsync(Dataset, Costs, CancellationToken.None)).ShouldBeTrue();
    }

    public async Task DisposeAsync() => await Warehouse.DropDatasetAsync(Dataset, CancellationToken.None);

    [Fact]
    public async Task Datasets_CreateListDrop_AreIdempotentAndSeeTheirTables()
    {
        (await Warehouse.CreateDatasetAsync(Dataset, CancellationToken.None)).ShouldBeFalse();
        (await Warehouse.EnsureTableAsync(Dataset, Costs, CancellationToken.None)).ShouldBeFalse();
        (await Warehouse.DatasetExistsAsync(Dataset, CancellationToken.None)).ShouldBeTrue();
        (await Warehouse.ListTablesAsync(Dataset, CancellationToken.None)).ShouldBe(["contract_costs"]);

        await Warehouse.DropTableAsync(Dataset, Costs.Name, CancellationToken.None);
        (await Warehouse.ListTablesAsync(Dataset, CancellationToken.None)).ShouldBeEmpty();

        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        await Warehouse.DropDatasetAsync(Dataset, CancellationToken.None);
        (await Warehouse.DatasetExistsAsync(Dataset, CancellationToken.None)).ShouldBeFalse();
        await Should.ThrowAsync<InvalidOperationException>(() => Warehouse.ListTablesAsync(Dataset, CancellationToken.None));
        await Warehouse.DropDatasetAsync(Dataset, CancellationToken.None);
    }

    [Fact]
    public async Task Probe_ReportsReachableAndWritable()
    {
        var probe = await Warehouse.ProbeAsync(CancellationToken.None);

        probe.ShouldBe(new WarehouseProbe(true, true, null));
    }

    [Fact]
    public async Task Append_KeepsEveryWrite()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));

        (await Warehouse.CountRowsAsync(Dataset, Costs.Name, CancellationToken.None)).ShouldBe(6);
    }

    [Fact]
    public async Task Truncate_ReplacesEverything()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3).Concat(Rows(Nov2, "b", 3)));

        await WriteAsync(new WriteSpec(WriteMode.Truncate, [], null, null, null), Rows(Nov3, "c", 2));

        (await CountsAsync()).ShouldBe(["c 2020-11-03 2"]);
    }

    [Fact]
    public async Task MergePartition_RerunOfTheSameSlice_ReplacesOnlyTheSlice()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 4).Concat(Rows(Nov2, "a", 4)).Concat(Rows(Nov3, "a", 4)));
        var slice = new WriteSpec(WriteMode.MergePartition, [], "day", Nov2, Nov2);

        await WriteAsync(slice, Rows(Nov2, "b", 2));
        await WriteAsync(slice, Rows(Nov2, "b", 2));

        (await CountsAsync()).ShouldBe(["a 2020-11-01 4", "a 2020-11-03 4", "b 2020-11-02 2"]);
    }

    [Fact]
    public async Task MergePartition_RowOutsideTheSlice_FailsAndLeavesTheTable()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov2, "a", 4));

        var error = await Should.ThrowAsync<InvalidOperationException>(() =>
            WriteAsync(new WriteSpec(WriteMode.MergePartition, [], "day", Nov2, Nov2), Rows(Nov2, "b", 2).Concat(Rows(Nov3, "b", 1))));

        error.Message.ShouldContain("Row 3");
        error.Message.ShouldContain("outside the run's slice 2020-11-02..2020-11-02");
        (await CountsAsync()).ShouldBe(["a 2020-11-02 4"]);
    }

    [Fact]
    public async Task Upsert_ReplacesRowsByKey_TheLastRowOfAKeyWins()
    {
        var upsert = new WriteSpec(WriteMode.Upsert, ["account", "line"], null, null, null);
        await WriteAsync(upsert, Rows(Nov1, "a", 3));

        object?[][] rows = [["a", Nov2, 10m, 2L], ["a", Nov3, 11m, 2L], ["b", Nov1, 1m, 1L]];
        await WriteAsync(upsert, rows);
        await WriteAsync(upsert, rows);

        var stored = await QueryAsync("SELECT account, day, amount, line FROM contract_costs ORDER BY account, line");
        stored.Select(r => $"{r.Text("account")} {r.Date("day"):yyyy-MM-dd} {r.Decimal("amount")} {r.Long("line")}").ShouldBe(
            ["a 2020-11-01 1.5 1", "a 2020-11-03 11 2", "a 2020-11-01 0 3", "b 2020-11-01 1 1"]);
    }

    [Fact]
    public async Task ReplacePartitions_Rerun_ReplacesThePartitionsWrittenWithoutDuplicates()
    {
        var replace = new WriteSpec(WriteMode.ReplacePartitions, ["account", "day"], null, null, null);
        await WriteAsync(replace, Rows(Nov1, "a", 10).Concat(Rows(Nov2, "a", 10)));

        await WriteAsync(replace, Rows(Nov2, "a", 3).Concat(Rows(Nov2, "b", 4)));
        await WriteAsync(replace, Rows(Nov2, "a", 3).Concat(Rows(Nov2, "b", 4)));

        (await CountsAsync()).ShouldBe(["a 2020-11-01 10", "a 2020-11-02 3", "b 2020-11-02 4"]);
    }

    [Fact]
    public async Task ReplacePartitions_SecondBatchOfOneWrite_ReplacesTheFirstBatchsPartitions()
    {
        var replace = new WriteSpec(WriteMode.ReplacePartitions, ["account", "day"], null, null, null);
        await WriteAsync(replace, Rows(Nov1, "a", 10).Concat(Rows(Nov3, "c", 2)));

        await using (var write = await Warehouse.BeginWriteAsync(Dataset, Costs, replace, CancellationToken.None))
        {
            (await write.WriteRecordsAsync(Columns, Rows(Nov1, "a", 6).Concat(Rows(Nov2, "b", 5)), CancellationToken.None)).ShouldBe(11);
            (await write.WriteRecordsAsync(Columns, Rows(Nov2, "b", 2), CancellationToken.None)).ShouldBe(2);
            await write.CommitAsync(CancellationToken.None);
        }

        (await CountsAsync()).ShouldBe(["a 2020-11-01 6", "b 2020-11-02 2", "c 2020-11-03 2"]);
    }

    [Fact]
    public async Task ReplacePartitions_OnABlockRangeIndexedDay_ReplacesOnlyThePartitionsWritten()
    {
        // A BRIN index on PostgreSQL (an ordinary one elsewhere); the replacement is bounded by the staged days.
        var ranged = Costs with { Name = "contract_costs_by_day", Indexes = [["day"]], BlockRangeIndexes = [["day"]] };
        (await Warehouse.EnsureTableAsync(Dataset, ranged, CancellationToken.None)).ShouldBeTrue();
        var replace = new WriteSpec(WriteMode.ReplacePartitions, ["account", "day"], null, null, null);
        async Task Write(IEnumerable<object?[]> rows)
        {
            await using var write = await Warehouse.BeginWriteAsync(Dataset, ranged, replace, CancellationToken.None);
            await write.WriteRecordsAsync(Columns, rows, CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        await Write(Rows(Nov1, "a", 10).Concat(Rows(Nov2, "a", 10)).Concat(Rows(Nov3, "b", 5)));
        await Write(Rows(Nov2, "a", 3).Concat(Rows(Nov3, "c", 2)));

        (await QueryAsync("SELECT account, day, COUNT(*) AS n FROM contract_costs_by_day GROUP BY account, day ORDER BY account, day"))
            .Select(r => $"{r.Text("account")} {r.Date("day"):yyyy-MM-dd} {r.Long("n")}")
            .ShouldBe(["a 2020-11-01 10", "a 2020-11-02 3", "b 2020-11-03 5", "c 2020-11-03 2"]);
        var index = Warehouse.Kind == "postgres"
            ? (await QueryAsync("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'ix_contract_costs_by_day_day'")).Single().RequireText("indexdef")
            : (await QueryAsync("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_contract_costs_by_day_day'")).Single().RequireText("sql");
        index.ShouldContain(Warehouse.Kind == "postgres" ? "USING brin (day)" : "(\"day\")");
    }

    [Fact]
    public async Task FailingLoad_IntoAFilledTable_LeavesThePreviousRows()
    {
        var replace = new WriteSpec(WriteMode.ReplacePartitions, ["account", "day"], null, null, null);
        await WriteAsync(replace, Rows(Nov1, "a", 5));
        var before = await CountsAsync();

        await Should.ThrowAsync<FormatException>(() => WriteAsync(replace, RecordStreams.Failing(Rows(Nov1, "a", 50), after: 20)));

        (await CountsAsync()).ShouldBe(before);
    }

    [Fact]
    public async Task UncommittedWrite_IsInvisible_AndDisposingItRollsBack()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));

        await using (var write = await Warehouse.BeginWriteAsync(Dataset, Costs, new WriteSpec(WriteMode.Truncate, [], null, null, null), CancellationToken.None))
        {
            await write.WriteRecordsAsync(Columns, Rows(Nov2, "b", 7), CancellationToken.None);
            (await CountsAsync()).ShouldBe(["a 2020-11-01 2"]);
        }

        (await CountsAsync()).ShouldBe(["a 2020-11-01 2"]);
    }

    [Fact]
    public async Task ConcurrentWrites_OfTheSameSlice_DoNotInterleave()
    {
        var slice = new WriteSpec(WriteMode.MergePartition, [], "day", Nov1, Nov1);
        var first = await Warehouse.BeginWriteAsync(Dataset, Costs, slice, CancellationToken.None);
        await first.WriteRecordsAsync(Columns, Rows(Nov1, "a", 5), CancellationToken.None);

        var second = Task.Run(() => WriteAsync(slice, Rows(Nov1, "b", 5)));
        await Task.Delay(300);
        await first.CommitAsync(CancellationToken.None);
        await first.DisposeAsync();
        await second.WaitAsync(TimeSpan.FromSeconds(30));

        (await CountsAsync()).ShouldBe(["b 2020-11-01 5"]);
    }

    [Fact]
    public async Task Decimals_RoundTripExactly()
    {
        object?[][] rows = [["a", Nov1, 0.000000001m, 1L], ["a", Nov1, 12345678901234.567890123m, 2L], ["a", Nov1, -0.5m, 3L], ["a", Nov1, "42.0100", 4L]];

        await WriteAsync(WriteSpec.Append, rows);

        var stored = await QueryAsync("SELECT amount FROM contract_costs ORDER BY line");
        stored.Select(r => r.Decimal("amount")).ShouldBe([0.000000001m, 12345678901234.567890123m, -0.5m, 42.01m]);
    }

    [Fact]
    public async Task Values_DatesTimestampsBoolsJson_RoundTripThroughQueries()
    {
        var at = new DateTimeOffset(2020, 11, 9, 23, 30, 15, TimeSpan.FromHours(2)).AddTicks(1234560);
        await using (var write = await Warehouse.BeginWriteAsync(Dataset, Costs, WriteSpec.Append, CancellationToken.None))
        {
            await write.WriteRowsAsync(
                new IReadOnlyDictionary<string, object?>[]
                {
                    new Dictionary<string, object?> { ["account"] = "a", ["day"] = Nov1, ["at"] = at, ["billable"] = true, ["labels"] = """{"team":"x"}""", ["ratio"] = 0.25, ["line"] = 1L },
                    new Dictionary<string, object?> { ["account"] = "b", ["day"] = "2020-11-02", ["at"] = "2020-11-02T01:02:03Z", ["billable"] = false, ["line"] = 2L },
                }.ToAsyncEnumerable(),
                CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        var rows = await QueryAsync("SELECT * FROM contract_costs ORDER BY line");

        rows[0].Date("day").ShouldBe(Nov1);
        ReadTimestamp(rows[0]["at"]).ShouldBe(at);
        rows[0].Bool("billable").ShouldBeTrue();
        System.Text.Json.JsonDocument.Parse(rows[0].RequireText("labels")).RootElement.GetProperty("team").GetString().ShouldBe("x");
        Convert.ToDouble(rows[0]["ratio"], System.Globalization.CultureInfo.InvariantCulture).ShouldBe(0.25);
        rows[1].Date("day").ShouldBe(Nov2);
        ReadTimestamp(rows[1]["at"]).ShouldBe(new DateTimeOffset(2020, 11, 2, 1, 2, 3, TimeSpan.Zero));
        rows[1].Bool("billable").ShouldBeFalse();
        rows[1]["labels"].ShouldBeNull();
    }

    [Fact]
    public async Task Stream_GivesTheQuerysRowsLazily_AndAnEarlyStopReleasesTheDataset()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 50));
        var query = new SqlQuery("SELECT * FROM contract_costs WHERE day = @day ORDER BY line", new Dictionary<string, object?> { ["day"] = Nov1 });

        var streamed = await Warehouse.StreamAsync(Dataset, query, CancellationToken.None).ToListAsync();
        var queried = await Warehouse.QueryAsync(Dataset, query, int.MaxValue, CancellationToken.None);

        streamed.Count.ShouldBe(50);
        streamed.Select(r => string.Join("|", r.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")))
            .ShouldBe(queried.Select(r => string.Join("|", r.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"))));

        // Stopping after two rows disposes the reader and its connection: the table can be rewritten and dropped at once.
        var firstTwo = await Warehouse.StreamAsync(Dataset, query, CancellationToken.None).Take(2).ToListAsync();
        firstTwo.Count.ShouldBe(2);
        await WriteAsync(new WriteSpec(WriteMode.Truncate, [], null, null, null), Rows(Nov2, "b", 1));
        await Warehouse.DropTableAsync(Dataset, "contract_costs", CancellationToken.None);
        (await Warehouse.ListTablesAsync(Dataset, CancellationToken.None)).ShouldNotContain("contract_costs");
    }

    [Fact]
    public async Task Query_DateParameters_CompareWithDateColumns()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 1).Concat(Rows(Nov2, "a", 2)).Concat(Rows(Nov3, "a", 3)));

        var rows = await Warehouse.QueryAsync(
            Dataset,
            new SqlQuery("SELECT day FROM contract_costs WHERE day >= @start AND day <= @end AND (@account IS NULL OR account = @account) ORDER BY day, line", new Dictionary<string, object?> { ["start"] = Nov2, ["end"] = Nov2, ["account"] = null }),
            int.MaxValue,
            CancellationToken.None);
        var named = await Warehouse.QueryAsync(
            Dataset,
            new SqlQuery("SELECT day FROM contract_costs WHERE (@account IS NULL OR account = @account) AND day = @day", new Dictionary<string, object?> { ["day"] = "2020-11-03", ["account"] = "a" }),
            int.MaxValue,
            CancellationToken.None);

        rows.Select(r => r.Date("day")).ShouldBe([Nov2, Nov2]);
        named.Count.ShouldBe(3);
    }

    [Fact]
    public async Task WriteRecords_OneRefilledArray_WritesEveryRow()
    {
        var written = await WriteAsync(new WriteSpec(WriteMode.ReplacePartitions, ["account", "day"], null, null, null), Rows(Nov1, "a", 1_003));

        written.ShouldBe(1_003);
        (await Warehouse.CountRowsAsync(Dataset, Costs.Name, CancellationToken.None)).ShouldBe(1_003);
        var last = await QueryAsync("SELECT amount, line FROM contract_costs ORDER BY line DESC LIMIT 1");
        last.ShouldHaveSingleItem().Long("line").ShouldBe(1_003L);
        last[0].Decimal("amount").ShouldBe(1003.5m);
    }

    [Fact]
    public async Task MissingRequiredValue_NamesTheRowAndWritesNothing()
    {
        object?[][] rows = [["a", Nov1, 1m, 1L], [null, Nov1, 1m, 2L]];

        var error = await Should.ThrowAsync<ArgumentException>(() => WriteAsync(WriteSpec.Append, rows));

        error.Message.ShouldContain("Row 2");
        error.Message.ShouldContain("'account'");
        (await Warehouse.CountRowsAsync(Dataset, Costs.Name, CancellationToken.None)).ShouldBe(0);
    }

    [Fact]
    public async Task UnknownColumn_IsRejected()
    {
        await using var write = await Warehouse.BeginWriteAsync(Dataset, Costs, WriteSpec.Append, CancellationToken.None);

        var error = await Should.ThrowAsync<ArgumentException>(() => write.WriteRecordsAsync(["account", "nope"], [["a", 1]], CancellationToken.None));

        error.Message.ShouldContain("'nope'");
    }

    [Fact]
    public async Task WriteQuery_ReplacesPartitionsFromAQueryInTheDataset()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3).Concat(Rows(Nov2, "a", 3)));
        var query = new SqlQuery(
            "SELECT account, @to AS day, amount * 2 AS amount, line FROM contract_costs WHERE day = @from",
            new Dictionary<string, object?> { ["from"] = Nov1, ["to"] = Nov2 });

        long written;
        await using (var write = await Warehouse.BeginWriteAsync(Dataset, Costs, new WriteSpec(WriteMode.ReplacePartitions, ["account", "day"], null, null, null), CancellationToken.None))
        {
            written = await write.WriteQueryAsync(query, CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        written.ShouldBe(3);
        var stored = await QueryAsync("SELECT day, amount FROM contract_costs ORDER BY day, line");
        stored.Select(r => $"{r.Date("day"):MM-dd} {r.DecimalOrNull("amount")}").ShouldBe(["11-01 1.5", "11-01 2.5", "11-01 ", "11-02 3.0", "11-02 5.0", "11-02 "]);
    }

    [Fact]
    public async Task WriteQuery_ChecksItsColumnsAndTheSlice()
    {
        await using var write = await Warehouse.BeginWriteAsync(Dataset, Costs, new WriteSpec(WriteMode.MergePartition, [], "day", Nov1, Nov1), CancellationToken.None);

        var unknown = await Should.ThrowAsync<InvalidOperationException>(() => write.WriteQueryAsync(new SqlQuery("SELECT 'a' AS account, @day AS day, 1 AS line, 2 AS other", new Dictionary<string, object?> { ["day"] = Nov1 }), CancellationToken.None));
        unknown.Message.ShouldContain("other");

        var missing = await Should.ThrowAsync<InvalidOperationException>(() => write.WriteQueryAsync(new SqlQuery("SELECT 'a' AS account, 1 AS line", NoParameters), CancellationToken.None));
        missing.Message.ShouldContain("required column(s) day");
    }

    [Fact]
    public async Task WriteQuery_OutsideTheSlice_IsRefused()
    {
        await using var write = await Warehouse.BeginWriteAsync(Dataset, Costs, new WriteSpec(WriteMode.MergePartition, [], "day", Nov1, Nov1), CancellationToken.None);

        var outside = await Should.ThrowAsync<InvalidOperationException>(() => write.WriteQueryAsync(new SqlQuery("SELECT 'a' AS account, @day AS day, 1 AS line", new Dictionary<string, object?> { ["day"] = Nov2 }), CancellationToken.None));

        outside.Message.ShouldContain("1 row(s) outside the run's slice");
    }

    [Fact]
    public async Task DataQuality_ChecksSeeTheUncommittedSlice_WithFailingSamples()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov2, "z", 4));
        await using var write = await Warehouse.BeginWriteAsync(Dataset, Costs, new WriteSpec(WriteMode.MergePartition, [], "day", Nov1, Nov1), CancellationToken.None);
        object?[][] rows = [["a", Nov1, 1m, 1L], ["a", Nov1, null, 1L], ["b", Nov1, 3m, 2L]];
        await write.WriteRecordsAsync(Columns, rows, CancellationToken.None);

        DqCheckDefinition Check(DqCheckKind kind, string? column = null, IReadOnlyList<string>? columns = null, IReadOnlyList<string>? values = null, long? value = null, string? expression = null) =>
            new("c", kind, column, columns ?? (column is null ? [] : [column]), values ?? [], value, expression, DqSeverity.Error);

        var count = await write.EvaluateAsync(Check(DqCheckKind.RowCountMin, value: 3), NoParameters, CancellationToken.None);
        (count.Passed, count.ObservedValue, count.Threshold).ShouldBe((true, "3", ">= 3"));
        (await write.EvaluateAsync(Check(DqCheckKind.RowCountMax, value: 2), NoParameters, CancellationToken.None)).Passed.ShouldBeFalse();

        var notNull = await write.EvaluateAsync(Check(DqCheckKind.NotNull, "amount"), NoParameters, CancellationToken.None);
        (notNull.Passed, notNull.ObservedValue).ShouldBe((false, "1 failing row(s)"));
        notNull.FailingSample.ShouldHaveSingleItem().Long("line").ShouldBe(1L);

        var unique = await write.EvaluateAsync(Check(DqCheckKind.Unique, columns: ["account", "line"]), NoParameters, CancellationToken.None);
        (unique.Passed, unique.ObservedValue).ShouldBe((false, "1 duplicated key(s)"));
        unique.FailingSample.ShouldHaveSingleItem().Long("occurrences").ShouldBe(2L);

        var accepted = await write.EvaluateAsync(Check(DqCheckKind.AcceptedValues, "account", values: ["a"]), NoParameters, CancellationToken.None);
        (accepted.Passed, accepted.ObservedValue).ShouldBe((false, "1 failing row(s)"));
        accepted.FailingSample.ShouldHaveSingleItem().Text("account").ShouldBe("b");

        var expression = await write.EvaluateAsync(Check(DqCheckKind.Expression, expression: "amount IS NULL OR amount < @limit"), new Dictionary<string, object?> { ["limit"] = 2m }, CancellationToken.None);
        (expression.Passed, expression.ObservedValue).ShouldBe((false, "1 failing row(s)"));
        expression.FailingSample.ShouldHaveSingleItem().Decimal("amount").ShouldBe(3m);
    }

    [Fact]
    public async Task EnsureTable_SchemaAddsANullableColumn_AddsItAndKeepsTheRows()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));
        var evolved = Costs with { Columns = [.. Costs.Columns, new ColumnSchema("region", ColumnType.String, false, null)] };

        (await Warehouse.EnsureTableAsync(Dataset, evolved, CancellationToken.None)).ShouldBeFalse();

        (await CountsAsync()).ShouldBe(["a 2020-11-01 3"]);
        (await QueryAsync("SELECT region FROM contract_costs")).Select(r => r["region"]).ShouldBe([null, null, null]);
        (await Warehouse.EnsureTableAsync(Dataset, evolved, CancellationToken.None)).ShouldBeFalse();
    }

    [Fact]
    public async Task EnsureTable_RequiredColumnMadeNullable_RelaxesItKeepingRowsAndIndexes()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));
        var relaxed = Costs with { Columns = [.. Costs.Columns.Select(c => c.Name == "line" ? c with { Required = false } : c)] };

        (await Warehouse.EnsureTableAsync(Dataset, relaxed, CancellationToken.None)).ShouldBeFalse();
        await using (var write = await Warehouse.BeginWriteAsync(Dataset, relaxed, WriteSpec.Append, CancellationToken.None))
        {
            await write.WriteRecordsAsync(Columns, [["b", Nov2, 1.5m, null]], CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        (await CountsAsync()).ShouldBe(["a 2020-11-01 3", "b 2020-11-02 1"]);
        (await QueryAsync("SELECT line FROM contract_costs ORDER BY account, line")).Select(r => r["line"]).ShouldBe([1L, 2L, 3L, null]);
        (await ColumnsAsync()).ShouldContain(c => c.StartsWith("line ", StringComparison.Ordinal) && !c.EndsWith(" required", StringComparison.Ordinal));
        (await IndexesAsync()).ShouldContain("ix_contract_costs_account_day");
    }

    [Fact]
    public async Task EnsureTable_TypeChange_IsRefusedNamingTheColumnAndLeavesTheTable()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));
        var before = await ColumnsAsync();
        var changed = Costs with
        {
            Columns = [.. Costs.Columns.Select(c => c.Name == "line" ? c with { Type = ColumnType.String } : c), new ColumnSchema("region", ColumnType.String, false, null)],
            Indexes = [.. Costs.Indexes, ["line"]],
        };

        var error = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, changed, CancellationToken.None));

        error.Message.ShouldContain($"{Dataset.Name}.contract_costs");
        error.Message.ShouldContain("column 'line' is STRING REQUIRED in the schema");
        error.Conflicts.ShouldHaveSingleItem().Column.ShouldBe("line");
        (await ColumnsAsync()).ShouldBe(before, "nothing changed: no column added");
        (await IndexesAsync()).ShouldNotContain("ix_contract_costs_line");
        (await CountsAsync()).ShouldBe(["a 2020-11-01 3"]);
        await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.BeginWriteAsync(Dataset, changed, WriteSpec.Append, CancellationToken.None));
    }

    [Fact]
    public async Task EnsureTable_NewRequiredColumn_IsRefusedAndLeavesTheTable()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        var before = await ColumnsAsync();
        var required = Costs with { Columns = [.. Costs.Columns, new ColumnSchema("region", ColumnType.String, true, null)] };

        var error = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, required, CancellationToken.None));

        error.Message.ShouldContain("column 'region' is STRING REQUIRED in the schema but missing in the table");
        (await ColumnsAsync()).ShouldBe(before);
    }

    [Fact]
    public async Task EnsureTable_SchemaAddsAnIndex_CreatesIt()
    {
        var indexed = Costs with { Indexes = [.. Costs.Indexes, ["line"]] };

        (await Warehouse.EnsureTableAsync(Dataset, indexed, CancellationToken.None)).ShouldBeFalse();

        (await IndexesAsync()).ShouldContain("ix_contract_costs_line");
    }

    [Fact]
    public async Task BeginWrite_SchemaAddsANullableColumn_EvolvesTheTableFirst()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        var evolved = Costs with { Columns = [.. Costs.Columns, new ColumnSchema("region", ColumnType.String, false, null)] };

        await using (var write = await Warehouse.BeginWriteAsync(Dataset, evolved, WriteSpec.Append, CancellationToken.None))
        {
            await write.WriteRecordsAsync(["account", "day", "line", "region"], [["b", Nov2, 9L, "eu"]], CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        (await QueryAsync("SELECT account, region FROM contract_costs ORDER BY account, line")).Select(r => $"{r.Text("account")} {r.Text("region")}")
            .ShouldBe(["a ", "a ", "b eu"]);
    }

    [Fact]
    public async Task BeginWrite_TableVerifiedBefore_ReadsNoCatalogueUntilTheSchemaChanges()
    {
        var checks = Verdicts.Checks;
        for (var i = 0; i < 3; i++)
        {
            await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 1));
        }

        Verdicts.Checks.ShouldBe(checks);
        var evolved = Costs with { Columns = [.. Costs.Columns, new ColumnSchema("region", ColumnType.String, false, null)] };
        for (var i = 0; i < 2; i++)
        {
            await using var write = await Warehouse.BeginWriteAsync(Dataset, evolved, WriteSpec.Append, CancellationToken.None);
            await write.WriteRecordsAsync(["account", "day", "line", "region"], [["b", Nov2, 9L, "eu"]], CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        Verdicts.Checks.ShouldBe(checks + 1);
        (await CountsAsync()).ShouldBe(["a 2020-11-01 3", "b 2020-11-02 2"]);
    }

    [Fact]
    public async Task BeginWrite_TableDroppedByTheAdapter_ChecksAgainAndRecreatesIt()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        await Warehouse.DropTableAsync(Dataset, Costs.Name, CancellationToken.None);
        var checks = Verdicts.Checks;

        await WriteAsync(WriteSpec.Append, Rows(Nov2, "b", 1));
        await WriteAsync(WriteSpec.Append, Rows(Nov2, "b", 1));

        Verdicts.Checks.ShouldBe(checks + 1);
        (await CountsAsync()).ShouldBe(["b 2020-11-02 2"]);
    }

    [Fact]
    public async Task BeginWrite_SchemaConflict_IsNeverRemembered()
    {
        var changed = Costs with { Columns = [.. Costs.Columns.Select(c => c.Name == "line" ? c with { Type = ColumnType.String } : c)] };
        var checks = Verdicts.Checks;

        for (var i = 0; i < 2; i++)
        {
            await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.BeginWriteAsync(Dataset, changed, WriteSpec.Append, CancellationToken.None));
        }

        Verdicts.Checks.ShouldBe(checks + 2);
    }

    [Fact]
    public async Task EnsureTable_SchemaAddsAPrimaryKey_AddsItAndThenRefusesASchemaWithoutIt()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));
        var keyed = Costs with { PrimaryKey = ["account", "day", "line"] };

        (await Warehouse.EnsureTableAsync(Dataset, keyed, CancellationToken.None)).ShouldBeFalse();
        (await Warehouse.EnsureTableAsync(Dataset, keyed, CancellationToken.None)).ShouldBeFalse();

        (await CountsAsync()).ShouldBe(["a 2020-11-01 3"]);
        var dropped = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, Costs, CancellationToken.None));
        dropped.Message.ShouldContain("PRIMARY KEY (account, day, line)");
        var other = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, Costs with { PrimaryKey = ["account", "line"] }, CancellationToken.None));
        other.Message.ShouldContain("PRIMARY KEY (account, line)");
        other.Message.ShouldContain("PRIMARY KEY (account, day, line)");
    }

    [Fact]
    public async Task EnsureTable_PrimaryKeyOverDuplicates_IsRefusedAndNothingChanges()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        var keyed = Costs with
        {
            Columns = [.. Costs.Columns, new ColumnSchema("region", ColumnType.String, false, null)],
            PrimaryKey = ["account", "day", "line"],
        };

        var conflict = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, keyed, CancellationToken.None));

        conflict.Message.ShouldContain("PRIMARY KEY (account, day, line)");
        conflict.Message.ShouldContain("duplicates");
        (await ColumnsAsync()).ShouldNotContain(c => c.StartsWith("region ", StringComparison.Ordinal));
        (await CountsAsync()).ShouldBe(["a 2020-11-01 4"]);
    }

    [Fact]
    public async Task EnsureTable_SchemaAddsAUniqueKey_AddsItAndRefusesAKeyOnOtherColumns()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 3));
        var unique = Costs with { UniqueKeys = [["account", "day", "line"]] };

        (await Warehouse.EnsureTableAsync(Dataset, unique, CancellationToken.None)).ShouldBeFalse();
        (await Warehouse.EnsureTableAsync(Dataset, unique, CancellationToken.None)).ShouldBeFalse();

        var changed = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, Costs with { UniqueKeys = [["account", "line"]] }, CancellationToken.None));
        changed.Message.ShouldContain("UNIQUE (account, line)");
        changed.Message.ShouldContain("UNIQUE (account, day, line)");
        await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, Costs, CancellationToken.None));
    }

    [Fact]
    public async Task EnsureTable_UniqueKeyOverDuplicates_IsRefusedAndNothingChanges()
    {
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        await WriteAsync(WriteSpec.Append, Rows(Nov1, "a", 2));
        var unique = Costs with { UniqueKeys = [["account", "day", "line"]] };

        var conflict = await Should.ThrowAsync<TableSchemaConflictException>(() => Warehouse.EnsureTableAsync(Dataset, unique, CancellationToken.None));

        conflict.Message.ShouldContain("UNIQUE (account, day, line)");
        conflict.Message.ShouldContain("duplicates");
        (await Warehouse.EnsureTableAsync(Dataset, Costs, CancellationToken.None)).ShouldBeFalse();
        (await CountsAsync()).ShouldBe(["a 2020-11-01 4"]);
    }

    /// <summary>The adapter's verdict cache, whose <see cref="TableSchemaVerdicts.Checks"/> counts catalogue checks.</summary>
    private TableSchemaVerdicts Verdicts => (Warehouse is FaultyWarehouse faulty ? faulty.Inner : Warehouse) switch
    {
        Convergence.Storage.Sqlite.SqliteWarehouse sqlite => sqlite.Verdicts,
        PostgresWarehouse postgres => postgres.Verdicts,
        _ => throw new InvalidOperationException($"no verdict cache on {Warehouse.Kind}"),
    };

    /// <summary>
    /// The table's columns as the adapter's catalogue describes them: <c>name type required|nullable</c>, in order. By
    /// <see cref="IWarehouse.Kind"/>: the SQLite subclass runs on PostgreSQL under <c>CONVERGENCE_TEST_BACKEND=postgres</c>.
    /// </summary>
    private async Task<IReadOnlyList<string>> ColumnsAsync() => Warehouse.Kind == "postgres"
        ? [.. (await QueryAsync("SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'contract_costs' ORDER BY ordinal_position"))
            .Select(r => $"{r.Text("column_name")} {r.Text("data_type")} {(r.Text("is_nullable") == "NO" ? "required" : "nullable")}")]
        : [.. (await QueryAsync("SELECT name, type, \"notnull\" FROM pragma_table_info('contract_costs') ORDER BY cid"))
            .Select(r => $"{r.Text("name")} {r.Text("type")} {(r.Long("notnull") == 1 ? "required" : "nullable")}")];

    /// <summary>The names of the table's indexes, from the adapter's catalogue.</summary>
    private async Task<IReadOnlyList<string>> IndexesAsync() => Warehouse.Kind == "postgres"
        ? [.. (await QueryAsync("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'contract_costs'")).Select(r => r.RequireText("indexname"))]
        : [.. (await QueryAsync("SELECT name FROM pragma_index_list('contract_costs')")).Select(r => r.RequireText("name"))];

    /// <summary>A timestamp as the adapter returns it: a UTC <see cref="DateTimeOffset"/> or ISO 8601 text.</summary>
    private static DateTimeOffset ReadTimestamp(object? value) => value switch
    {
        DateTimeOffset t => t,
        string s => DateTimeOffset.Parse(s, System.Globalization.CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"not a timestamp: {value}"),
    };

    /// <summary>Rows of one partition in <see cref="Columns"/> order; one array refilled for every row, as a file reader hands them.</summary>
    protected static IEnumerable<object?[]> Rows(DateOnly day, string account, int count)
    {
        var row = new object?[Columns.Length];
        for (var i = 1; i <= count; i++)
        {
            row[0] = account;
            row[1] = day;
            row[2] = i % 3 == 0 ? null : i + 0.5m;
            row[3] = (long)i;
            yield return row;
        }
    }

    protected async Task<long> WriteAsync(WriteSpec spec, IEnumerable<object?[]> rows)
    {
        await using var write = await Warehouse.BeginWriteAsync(Dataset, Costs, spec, CancellationToken.None);
        var written = await write.WriteRecordsAsync(Columns, rows, CancellationToken.None);
        await write.CommitAsync(CancellationToken.None);
        return written;
    }

    protected async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(string sql) =>
        await Warehouse.QueryAsync(Dataset, new SqlQuery(sql, NoParameters), 10_000, CancellationToken.None);

    private async Task<IReadOnlyList<string>> CountsAsync() =>
        [.. (await QueryAsync("SELECT account, day, COUNT(*) AS n FROM contract_costs GROUP BY account, day ORDER BY account, day"))
            .Select(r => $"{r.Text("account")} {r.Date("day"):yyyy-MM-dd} {r.Long("n")}")];
}

/// <summary>The contract on the embedded warehouse of the API's services.</summary>
public sealed class SqliteWarehouseContractTests(SqliteWarehouseContractTests.Fixture fixture)
    : WarehouseContractTests(fixture.Warehouse), IClassFixture<SqliteWarehouseContractTests.Fixture>
{
    public sealed class Fixture : IDisposable
    {
        private readonly ConvergenceApiFactory _factory = new();

        public IWarehouse Warehouse => _factory.Services.GetRequiredService<IWarehouse>();

        public void Dispose() => _factory.Dispose();
    }
}

/// <summary>The contract on PostgreSQL (a fresh database), plus the native types its queries return.</summary>
public sealed class PostgresWarehouseContractTests(PostgresWarehouseContractTests.Fixture fixture)
    : WarehouseContractTests(fixture.Warehouse), IClassFixture<PostgresWarehouseContractTests.Fixture>
{
    [Fact]
    public async Task Query_ReturnsNativeTypes()
    {
        await using (var write = await Warehouse.BeginWriteAsync(Dataset, Costs, WriteSpec.Append, CancellationToken.None))
        {
            await write.WriteRowsAsync(
                new IReadOnlyDictionary<string, object?>[]
                {
                    new Dictionary<string, object?>
                    {
                        ["account"] = "a", ["day"] = new DateOnly(2020, 11, 1), ["amount"] = "1.50", ["billable"] = 1L, ["labels"] = new { team = "x" },
                        ["at"] = new DateTimeOffset(2020, 11, 1, 12, 0, 0, TimeSpan.FromHours(-5)), ["line"] = 7,
                    },
                }.ToAsyncEnumerable(),
                CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        var row = (await QueryAsync("SELECT day, at, amount, billable, labels, line FROM contract_costs")).ShouldHaveSingleItem();

        row["day"].ShouldBe(new DateOnly(2020, 11, 1));
        row["at"].ShouldBe(new DateTimeOffset(2020, 11, 1, 17, 0, 0, TimeSpan.Zero));
        ((DateTimeOffset)row["at"]!).Offset.ShouldBe(TimeSpan.Zero);
        row["amount"].ShouldBe(1.50m);
        row["billable"].ShouldBe(true);
        row["labels"].ShouldBe("""{"team": "x"}""");
        row["line"].ShouldBe(7L);
    }

    /// <summary>
    /// Rows go to PostgreSQL in binary COPY encoded by the adapter itself (numeric digits and scale, microseconds,
    /// day numbers, UTF-8, jsonb's version byte). Each value must read back exactly as the server's own text input of
    /// the same value: the text is compared, so a lost scale, a digit group off by one or a rounded microsecond shows.
    /// </summary>
    [Fact]
    public async Task BinaryCopy_EncodesEveryTypeAsTheServerReadsItsText()
    {
        decimal[] amounts =
        [
            0m, 0.0m, 1m, -1m, 1.50m, 10000m, 9999.9999m, 0.0001m, 0.00001m, 100000000m, 12345.6789m, -0.5175950m,
            0.000000001m, 1e-28m, 79228162514264337593543950335m, -79228162514264337593543950335m,
            7.9228162514264337593543950335m, 12345678901234.567890123m, 53264264.0m, 1000000000000000000000m, -0.0010m,
        ];
        DateTimeOffset[] times =
        [
            new(2020, 11, 9, 23, 30, 15, TimeSpan.FromHours(2)), new DateTimeOffset(2020, 11, 1, 6, 0, 0, TimeSpan.Zero).AddTicks(2453579),
            new(1999, 12, 31, 23, 59, 59, TimeSpan.Zero), new DateTimeOffset(1970, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(-15),
            new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero), new(9999, 12, 31, 23, 59, 59, TimeSpan.Zero),
        ];
        DateOnly[] days = [new(2020, 11, 1), new(1999, 12, 31), new(2000, 1, 1), new DateOnly(1, 1, 1).AddDays(1), new(2400, 2, 29)];
        string[] texts = ["plain", "", "Grüße – 東京 😀", "tab\tand\nnewline", new string('x', 100_000)];
        double[] ratios = [0.25, -1e-300, double.MaxValue, 1.0 / 3];
        var rows = new List<IReadOnlyDictionary<string, object?>>();
        for (var i = 0; i < amounts.Length; i++)
        {
            rows.Add(new Dictionary<string, object?>
            {
                ["account"] = texts[i % texts.Length], ["day"] = days[i % days.Length], ["amount"] = amounts[i], ["at"] = times[i % times.Length],
                ["billable"] = i % 2 == 0, ["labels"] = i % 3 == 0 ? null : $$"""{"i": {{i}}, "name": "{{texts[i % 3]}}"}""", ["ratio"] = ratios[i % ratios.Length], ["line"] = (long)i - 3,
            });
        }

        await using (var write = await Warehouse.BeginWriteAsync(Dataset, Costs, WriteSpec.Append, CancellationToken.None))
        {
            (await write.WriteRowsAsync(rows.ToAsyncEnumerable(), CancellationToken.None)).ShouldBe(amounts.Length);
            await write.CommitAsync(CancellationToken.None);
        }

        // The same values typed in as text literals, converted by the server: what the binary encoding must equal.
        static string Literal(object? value) => value switch
        {
            null => "NULL",
            decimal m => $"'{m.ToString(System.Globalization.CultureInfo.InvariantCulture)}'::numeric",
            DateOnly d => $"'{d:yyyy-MM-dd}'::date",
            DateTimeOffset t => $"'{t.UtcDateTime:yyyy-MM-dd HH:mm:ss.ffffff}+00'::timestamptz",
            bool b => b ? "true" : "false",
            double d => $"'{d.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}'::float8",
            long l => $"{l}::bigint",
            string s => $"'{s.Replace("'", "''", StringComparison.Ordinal)}'",
            _ => throw new ArgumentException(value.GetType().Name),
        };
        var expected = string.Join(" UNION ALL ", rows.Select(r =>
            $"SELECT {Literal(r["account"])}::text AS account, {Literal(r["day"])} AS day, {Literal(r["amount"])} AS amount, {Literal(r["at"])} AS at, " +
            $"{Literal(r["billable"])} AS billable, {Literal(r["labels"])}::jsonb AS labels, {Literal(r["ratio"])} AS ratio, {Literal(r["line"])} AS line"));
        const string AsText = "account, day::text AS day, amount::text AS amount, at::text AS at, billable::text AS billable, labels::text AS labels, ratio::text AS ratio, line";
        var stored = await QueryAsync($"SELECT {AsText} FROM contract_costs ORDER BY line");
        var typed = await QueryAsync($"SELECT {AsText} FROM ({expected}) AS e ORDER BY line");

        stored.Count.ShouldBe(amounts.Length);
        for (var i = 0; i < stored.Count; i++)
        {
            stored[i].ShouldBe(typed[i], $"row {i}");
        }

        stored.Select(r => r.Text("amount")).ShouldBe(amounts.Select(a => a.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    public sealed class Fixture : IDisposable
    {
        private readonly ServiceProvider _services =
            new ServiceCollection().AddPostgresStorage(null, PostgresServer.CreateDatabase("warehouse")).BuildServiceProvider();

        public IWarehouse Warehouse => _services.GetRequiredService<IWarehouse>();

        public void Dispose() => _services.Dispose();
    }
}
