using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection;

using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Warehouse;

/// <summary>
/// Bulk writes by position (<see cref="IWarehouseWrite.WriteRecordsAsync"/>) on the embedded warehouse: values equal
/// to the previous row's are not rebound, an empty table gets its index built after the load, and every path keeps
/// the write atomic. What every adapter does alike (required values, unknown columns, failed loads into a filled
/// table) is in <see cref="WarehouseContractTests"/>.
/// </summary>
public sealed class SqliteRecordWriteTests : IAsyncLifetime
{
    private static readonly TableSchema Schema = new(
        "bulk_rows",
        null,
        [
            new ColumnSchema("account", ColumnType.String, true, null),
            new ColumnSchema("day", ColumnType.Date, true, null),
            new ColumnSchema("amount", ColumnType.Numeric, false, null),
            new ColumnSchema("at", ColumnType.Timestamp, false, null),
            new ColumnSchema("note", ColumnType.String, false, null),
            new ColumnSchema("line", ColumnType.Int64, true, null),
        ],
        [],
        [],
        [["account", "day"]]);

    private static readonly string[] Columns = ["account", "day", "amount", "at", "note", "line"];

    private static readonly WriteSpec ReplacePartitions = new(WriteMode.ReplacePartitions, ["account", "day"], null, null, null);

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("convergence-bulk-");
    private readonly DatasetRef _dataset = DatasetRef.ForOrg(OrgSlug.From("bulk_org"), DeploymentEnvironment.Development);
    private ServiceProvider? _services;

    private IWarehouse Warehouse => _services!.GetRequiredService<IWarehouse>();

    public async Task InitializeAsync()
    {
        _services = new ServiceCollection().AddSqliteStorage(_directory.FullName, controlPlane: false, warehouse: true).BuildServiceProvider();
        await Warehouse.CreateDatasetAsync(_dataset, CancellationToken.None);
        await Warehouse.EnsureTableAsync(_dataset, Schema, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _services!.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task EmptyTable_RowCountNotAMultipleOfAnything_LoadsEveryRowAndRebuildsTheIndex()
    {
        var written = await WriteAsync(ReplacePartitions, Rows("a", new DateOnly(2020, 11, 1), 1_003));

        written.ShouldBe(1_003);
        (await Warehouse.CountRowsAsync(_dataset, Schema.Name, CancellationToken.None)).ShouldBe(1_003);
        (await IndexesAsync()).ShouldBe(["ix_bulk_rows_account_day"]);
        var last = await QueryAsync("SELECT account, day, amount, line FROM bulk_rows ORDER BY line DESC LIMIT 1");
        last.ShouldHaveSingleItem()["line"].ShouldBe(1_003L);
        last[0]["amount"].ShouldBe("1003.5");
    }

    [Fact]
    public async Task NewDatasetFile_Has64KiBPages_WhileTheControlPlaneKeepsSqlitesDefault()
    {
        (await QueryAsync("PRAGMA page_size")).ShouldHaveSingleItem()["page_size"].ShouldBe(65536L);
        (await QueryAsync("PRAGMA journal_mode")).ShouldHaveSingleItem()["journal_mode"].ShouldBe("wal");

        // The control plane's file is opened (and created) through the same class without a page size.
        var files = new SqliteDatasetFiles(_directory.FullName);
        await using var central = await files.OpenAsync(DatasetRef.Central, CancellationToken.None, Microsoft.Data.Sqlite.SqliteOpenMode.ReadWriteCreate);
        await using var command = central.CreateCommand();
        command.CommandText = "CREATE TABLE IF NOT EXISTS t (x); PRAGMA page_size";
        (await command.ExecuteScalarAsync()).ShouldBe(4096L);
    }

    [Fact]
    public async Task RepeatedValues_AreStoredExactlyAsEachRowGivesThem()
    {
        // Rows that repeat, drop and bring back values at the same positions: a value equal to the previous row's is
        // not rebound, so each case must still read back as that row wrote it.
        var at = new DateTimeOffset(2020, 11, 9, 23, 0, 0, TimeSpan.Zero);
        object?[][] rows =
        [
            ["a", new DateOnly(2020, 11, 9), 1.0m, at, "x", 1L],
            ["a", new DateOnly(2020, 11, 9), 1.00m, at.ToOffset(TimeSpan.FromHours(2)), "x", 2L],
            ["a", new DateOnly(2020, 11, 9), null, null, string.Empty, 3L],
            ["a", new DateOnly(2020, 11, 9), null, null, null, 4L],
            ["a", new DateOnly(2020, 11, 9), 0m, at, "x", 5L],
            ["b", new DateOnly(2020, 11, 10), -0.000001m, at.AddTicks(1), "y", 6L],
        ];

        await WriteAsync(ReplacePartitions, rows);

        var stored = await QueryAsync("SELECT account, day, amount, at, note FROM bulk_rows ORDER BY line");
        stored.Select(r => $"{r["account"]}|{r["day"]}|{r["amount"] ?? "NULL"}|{r["at"] ?? "NULL"}|{r["note"] ?? "NULL"}").ShouldBe(
        [
            "a|2020-11-09|1.0|2020-11-09T23:00:00.0000000Z|x",
            "a|2020-11-09|1.00|2020-11-09T23:00:00.0000000Z|x",
            "a|2020-11-09|NULL|NULL|",
            "a|2020-11-09|NULL|NULL|NULL",
            "a|2020-11-09|0|2020-11-09T23:00:00.0000000Z|x",
            "b|2020-11-10|-0.000001|2020-11-09T23:00:00.0000001Z|y",
        ]);
    }

    [Fact]
    public async Task FilledTable_ReplacesOnlyThePartitionsWritten_WithTheIndexMaintained()
    {
        await WriteAsync(ReplacePartitions, [.. Rows("a", new DateOnly(2020, 11, 1), 10), .. Rows("a", new DateOnly(2020, 11, 2), 10)]);

        // 11-02 again with fewer rows, and a new account: 11-01 stays as it was.
        await WriteAsync(ReplacePartitions, [.. Rows("a", new DateOnly(2020, 11, 2), 3), .. Rows("b", new DateOnly(2020, 11, 2), 4)]);

        var counts = await QueryAsync("SELECT account, day, COUNT(*) AS n FROM bulk_rows GROUP BY account, day ORDER BY account, day");
        counts.Select(r => $"{r["account"]} {r["day"]} {r["n"]}").ShouldBe(["a 2020-11-01 10", "a 2020-11-02 3", "b 2020-11-02 4"]);
        (await IndexesAsync()).ShouldBe(["ix_bulk_rows_account_day"]);
    }

    [Fact]
    public async Task FailingLoad_IntoAnEmptyTable_LeavesItEmptyWithItsIndex()
    {
        await Should.ThrowAsync<FormatException>(() => WriteAsync(ReplacePartitions, RecordStreams.Failing(Rows("a", new DateOnly(2020, 11, 1), 700), after: 600)));

        (await Warehouse.CountRowsAsync(_dataset, Schema.Name, CancellationToken.None)).ShouldBe(0);
        (await IndexesAsync()).ShouldBe(["ix_bulk_rows_account_day"]);
    }

    /// <summary>Rows of one partition; one array refilled for every row, as a file reader hands them.</summary>
    private static IEnumerable<object?[]> Rows(string account, DateOnly day, int count)
    {
        var row = new object?[Columns.Length];
        for (var i = 1; i <= count; i++)
        {
            row[0] = account;
            row[1] = day;
            row[2] = i % 3 == 0 ? null : i + 0.5m;
            row[3] = null;
            row[4] = "same note";
            row[5] = (long)i;
            yield return row;
        }
    }

    private async Task<long> WriteAsync(WriteSpec spec, IEnumerable<object?[]> rows)
    {
        await using var write = await Warehouse.BeginWriteAsync(_dataset, Schema, spec, CancellationToken.None);
        var written = await write.WriteRecordsAsync(Columns, rows, CancellationToken.None);
        await write.CommitAsync(CancellationToken.None);
        return written;
    }

    private async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(string sql) =>
        await Warehouse.QueryAsync(_dataset, new SqlQuery(sql, new Dictionary<string, object?>()), 10_000, CancellationToken.None);

    private async Task<IReadOnlyList<string?>> IndexesAsync() =>
        [.. (await QueryAsync("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bulk_rows' ORDER BY name")).Select(r => r["name"] as string)];
}
