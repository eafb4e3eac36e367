using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Warehouse;

/// <summary>
/// The embedded warehouse relaxes a REQUIRED column by rebuilding the table (SQLite cannot drop a NOT NULL in place):
/// what the rebuild keeps, and that a rebuild failing half-way leaves the old table exactly as it was. What every
/// adapter does alike is in <see cref="WarehouseContractTests"/>.
/// </summary>
public sealed class SqliteTableRebuildTests : IAsyncLifetime
{
    private static readonly TableSchema Schema = new(
        "usage_rows",
        null,
        [
            new ColumnSchema("account", ColumnType.String, true, null),
            new ColumnSchema("day", ColumnType.Date, true, null),
            new ColumnSchema("requests", ColumnType.Int64, true, null),
        ],
        [],
        [["account", "day", "requests"]],
        [["day"]]);

    private static readonly TableSchema Relaxed = Schema with
    {
        Columns = [.. Schema.Columns.Select(c => c.Name == "requests" ? c with { Required = false } : c)],
    };

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("convergence-rebuild-");
    private readonly DatasetRef _dataset = DatasetRef.ForOrg(OrgSlug.From("rebuild_org"), DeploymentEnvironment.Development);
    private ServiceProvider? _services;

    private IWarehouse Warehouse => _services!.GetRequiredService<IWarehouse>();

    public async Task InitializeAsync()
    {
        _services = new ServiceCollection().AddSqliteStorage(_directory.FullName, controlPlane: false, warehouse: true).BuildServiceProvider();
        await Warehouse.CreateDatasetAsync(_dataset, CancellationToken.None);
        await Warehouse.EnsureTableAsync(_dataset, Schema, CancellationToken.None);
        await using var write = await Warehouse.BeginWriteAsync(_dataset, Schema, WriteSpec.Append, CancellationToken.None);
        await write.WriteRecordsAsync(
            ["account", "day", "requests"],
            [["a", new DateOnly(2025, 11, 20), 0L], ["a", new DateOnly(2025, 11, 20), 1L], ["b", new DateOnly(2025, 11, 21), 0L]],
            CancellationToken.None);
        await write.CommitAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _services!.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task EnsureTable_RelaxedColumn_RebuildsWithTheRowsTheIndexesAndNoTemporaryTable()
    {
        (await Warehouse.EnsureTableAsync(_dataset, Relaxed, CancellationToken.None)).ShouldBeFalse();

        (await RowsAsync()).ShouldBe(["a 2025-11-20 0", "a 2025-11-20 1", "b 2025-11-21 0"]);
        (await ColumnsAsync()).ShouldBe(["account TEXT 1", "day TEXT 1", "requests INTEGER 0"]);
        (await QueryAsync("SELECT name FROM pragma_index_list('usage_rows') ORDER BY name")).Select(r => r.Text("name")).ShouldBe(["ix_usage_rows_day", "sqlite_autoindex_usage_rows_1"]);
        (await Warehouse.ListTablesAsync(_dataset, CancellationToken.None)).ShouldBe(["usage_rows"]);
        (await Warehouse.EnsureTableAsync(_dataset, Relaxed, CancellationToken.None)).ShouldBeFalse();
    }

    [Fact]
    public async Task EnsureTable_RebuildFailsCopyingTheRows_LeavesTheOldTableAsItWas()
    {
        // The rebuild creates the schema's shape: a unique key added alongside that the rows break fails the copy.
        var breaking = Relaxed with { UniqueKeys = [.. Relaxed.UniqueKeys, ["account", "day"]] };
        var before = await ColumnsAsync();

        await Should.ThrowAsync<Microsoft.Data.Sqlite.SqliteException>(() => Warehouse.EnsureTableAsync(_dataset, breaking, CancellationToken.None));

        (await ColumnsAsync()).ShouldBe(before);
        (await RowsAsync()).ShouldBe(["a 2025-11-20 0", "a 2025-11-20 1", "b 2025-11-21 0"]);
        (await QueryAsync("SELECT name FROM pragma_index_list('usage_rows') ORDER BY name")).Select(r => r.Text("name")).ShouldBe(["ix_usage_rows_day", "sqlite_autoindex_usage_rows_1"]);
        (await Warehouse.ListTablesAsync(_dataset, CancellationToken.None)).ShouldBe(["usage_rows"]);
    }

    private async Task<IReadOnlyList<string>> RowsAsync() =>
        [.. (await QueryAsync("SELECT account, day, requests FROM usage_rows ORDER BY account, day, requests")).Select(r => $"{r.Text("account")} {r.Text("day")} {r.Text("requests")}")];

    private async Task<IReadOnlyList<string>> ColumnsAsync() =>
        [.. (await QueryAsync("SELECT name, type, \"notnull\" FROM pragma_table_info('usage_rows') ORDER BY cid")).Select(r => $"{r.Text("name")} {r.Text("type")} {r.Text("notnull")}")];

    private async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(string sql) =>
        await Warehouse.QueryAsync(_dataset, new SqlQuery(sql, new Dictionary<string, object?>()), 100, CancellationToken.None);
}
