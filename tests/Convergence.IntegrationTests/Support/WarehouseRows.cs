using System.Globalization;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// An org's dataset read through the app's own <see cref="IWarehouse"/>, whichever adapter it runs on, with every value
/// in one representation so the same expectations hold on SQLite and PostgreSQL: integers and booleans as
/// <see cref="long"/>, decimals as invariant text with the scale they were stored with, dates as <c>yyyy-MM-dd</c>, timestamps as ISO 8601 UTC.
/// </summary>
public sealed class WarehouseRows(ConvergenceApiFactory factory, string org)
{
    private readonly IWarehouse _warehouse = factory.Services.GetRequiredService<IWarehouse>();

    private readonly DatasetRef _dataset = DatasetRef.ForOrg(OrgSlug.From(org), DeploymentEnvironment.Development);

    public bool Exists => _warehouse.DatasetExistsAsync(_dataset, CancellationToken.None).GetAwaiter().GetResult();

    public IReadOnlyList<string> Tables() => _warehouse.ListTablesAsync(_dataset, CancellationToken.None).GetAwaiter().GetResult();

    public long Count(string table) => _warehouse.CountRowsAsync(_dataset, table, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>The rows of a portable query (at most 10,000), values normalised as described on the class.</summary>
    public List<Dictionary<string, object?>> Rows(string sql) =>
        [.. _warehouse.QueryAsync(_dataset, new SqlQuery(sql, new Dictionary<string, object?>()), 10_000, CancellationToken.None).GetAwaiter().GetResult()
            .Select(row => row.ToDictionary(kv => kv.Key, kv => Normalise(kv.Value), StringComparer.Ordinal))];

    private static object? Normalise(object? value) => value switch
    {
        null or DBNull => null,
        int i => (long)i,
        short s => (long)s,
        bool b => b ? 1L : 0L,
        decimal m => m.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        DateTime t => new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
        DateTimeOffset t => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
        _ => value,
    };
}
