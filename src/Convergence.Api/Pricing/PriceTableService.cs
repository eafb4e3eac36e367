using System.Collections.Concurrent;
using System.Globalization;
using Convergence.Core.Configuration;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Pricing;
using Convergence.Core.Storage;

namespace Convergence.Api.Pricing;

/// <summary>
/// Each org's editable price lists (<c>{provider}_pricing</c> in the org's dataset), seeded from
/// <c>configs/{provider}/seed/data/{provider}_pricing.csv</c> the first time they are used.
/// </summary>
/// <remarks>
/// Every change reads the list, applies the change, validates the whole list (non-negative prices, no two rows of a
/// model covering one day) and writes it back in one atomic write, so a rejected change leaves the table as it was.
/// Changes to one org's list are serialized in this process; several instances editing the same list at once would
/// race until the PostgreSQL adapter (#7) takes row locks.
/// </remarks>
public sealed class PriceTableService(IWarehouse warehouse, TableSchemaCatalog tables, ConfigsFolder configs, DeploymentEnvironment environment, TimeProvider time)
    : IOrgPriceLists
{
    public async Task<PriceList> GetAsync(OrgSlug org, string provider, CancellationToken cancellationToken) =>
        PriceList.Create(await ListAsync(org, provider, cancellationToken));

    public static readonly IReadOnlyList<string> Providers = ["openai", "anthropic", "deepseek"];

    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);

    public async Task<IReadOnlyList<ModelPrice>> ListAsync(OrgSlug org, string provider, CancellationToken cancellationToken)
    {
        var schema = Schema(provider);
        var dataset = DatasetRef.ForOrg(org, environment);
        if (!await warehouse.DatasetExistsAsync(dataset, cancellationToken))
        {
            throw new ResourceNotFoundException("Organization dataset", dataset.Name);
        }

        if (await warehouse.EnsureTableAsync(dataset, schema, cancellationToken))
        {
            await ResetAsync(org, provider, cancellationToken);
        }

        var rows = await warehouse.QueryAsync(dataset, new SqlQuery($"SELECT * FROM {schema.Name} ORDER BY model_id, effective_from", new Dictionary<string, object?>()), int.MaxValue, cancellationToken);
        return [.. rows.Select(FromRow)];
    }

    /// <summary>Adds a price row; 409 when the model already has a row from that day.</summary>
    public Task<ModelPrice> AddAsync(OrgSlug org, string provider, ModelPrice price, CancellationToken cancellationToken) =>
        MutateAsync<ModelPrice>(org, provider, prices =>
        {
            if (prices.Any(p => p.ModelId == price.ModelId && p.EffectiveFrom == price.EffectiveFrom))
            {
                throw new ConflictException("Price exists", $"{price.ModelId} already has a price from {price.EffectiveFrom:yyyy-MM-dd}; PUT to change it.");
            }

            return ([.. prices, price], price);
        }, cancellationToken);

    /// <summary>
    /// Changes a model's price from <paramref name="price"/>'s <c>effective_from</c>: the row open on that day is closed
    /// the day before and the new row added, so earlier usage keeps its price; a row starting that very day is replaced.
    /// </summary>
    public Task<ModelPrice> ChangeAsync(OrgSlug org, string provider, ModelPrice price, CancellationToken cancellationToken) =>
        MutateAsync<ModelPrice>(org, provider, prices =>
            EffectiveDated.Change(prices, price) is { } changed
                ? (changed.Rows, changed.Added)
                : throw new ResourceNotFoundException("Model price", price.ModelId), cancellationToken);

    public Task<int> DeleteAsync(OrgSlug org, string provider, string modelId, CancellationToken cancellationToken) =>
        MutateAsync<int>(org, provider, prices =>
        {
            var removed = prices.Count(p => p.ModelId == modelId);
            return removed == 0
                ? throw new ResourceNotFoundException("Model price", modelId)
                : (prices.Where(p => p.ModelId != modelId).ToList(), removed);
        }, cancellationToken);

    /// <summary>Replaces the org's list with the shipped defaults.</summary>
    public async Task<int> ResetAsync(OrgSlug org, string provider, CancellationToken cancellationToken)
    {
        var defaults = PriceListCsv.Load(configs.Resolve($"{provider}/seed/data/{provider}_pricing.csv"));
        await WriteAllAsync(org, provider, defaults, cancellationToken);
        return defaults.Count;
    }

    public DateOnly Today => DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);

    private async Task<T> MutateAsync<T>(OrgSlug org, string provider, Func<IReadOnlyList<ModelPrice>, (List<ModelPrice> Prices, T Result)> change, CancellationToken cancellationToken)
    {
        var gate = _locks.GetOrAdd($"{org.Value}/{provider}", _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken);
        try
        {
            var (prices, result) = change(await ListAsync(org, provider, cancellationToken));
            await WriteAllAsync(org, provider, PriceList.Create(prices).Prices.ToList(), cancellationToken);
            return result;
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task WriteAllAsync(OrgSlug org, string provider, IReadOnlyList<ModelPrice> prices, CancellationToken cancellationToken)
    {
        var dataset = DatasetRef.ForOrg(org, environment);
        await using var write = await warehouse.BeginWriteAsync(dataset, Schema(provider), new WriteSpec(WriteMode.Truncate, [], null, null, null), cancellationToken);
        await write.WriteRowsAsync(prices.Select(ToRow).ToAsyncEnumerable(), cancellationToken);
        await write.CommitAsync(cancellationToken);
    }

    private TableSchema Schema(string provider) =>
        Providers.Contains(provider) ? tables.Get($"{provider}_pricing") : throw new ResourceNotFoundException("Provider", provider);

    private static IReadOnlyDictionary<string, object?> ToRow(ModelPrice p) => new Dictionary<string, object?>
    {
        ["model_id"] = p.ModelId,
        ["mode"] = p.Mode,
        ["input_per_mtok"] = p.InputPerMtok,
        ["cached_input_per_mtok"] = p.CachedInputPerMtok,
        ["cache_write_5m_per_mtok"] = p.CacheWrite5mPerMtok,
        ["cache_write_1h_per_mtok"] = p.CacheWrite1hPerMtok,
        ["output_per_mtok"] = p.OutputPerMtok,
        ["batch_input_per_mtok"] = p.BatchInputPerMtok,
        ["batch_output_per_mtok"] = p.BatchOutputPerMtok,
        ["currency"] = p.Currency,
        ["effective_from"] = p.EffectiveFrom,
        ["effective_to"] = p.EffectiveTo,
        ["source"] = p.Source,
    };

    private static ModelPrice FromRow(IReadOnlyDictionary<string, object?> row) => new(
        row.RequireText("model_id"), row.Text("mode"), row.Decimal("input_per_mtok"), row.DecimalOrNull("cached_input_per_mtok"), row.DecimalOrNull("cache_write_5m_per_mtok"),
        row.DecimalOrNull("cache_write_1h_per_mtok"), row.Decimal("output_per_mtok"), row.DecimalOrNull("batch_input_per_mtok"), row.DecimalOrNull("batch_output_per_mtok"),
        row.RequireText("currency"), row.Date("effective_from"), row.DateOrNull("effective_to"), row.Text("source"));
}

/// <summary>A provider's price list as a seed table of integration setup (<c>{provider}_pricing</c>).</summary>
public sealed class PriceSeedTable(PriceTableService prices, string provider) : Core.Integrations.IOrgSeedTable
{
    public string Table => $"{provider}_pricing";

    public async Task<int> SeedIfAbsentAsync(OrgSlug org, CancellationToken cancellationToken) =>
        (await prices.ListAsync(org, provider, cancellationToken)).Count;
}
