using System.Collections.Concurrent;
using System.Globalization;
using Convergence.Core.Configuration;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Pricing;
using Convergence.Core.Storage;
using Convergence.Core.Subscriptions;

namespace Convergence.Api.Pricing;

/// <summary>
/// Each org's editable OpenAI subscription plans (<c>openai_subscriptions</c> in the org's dataset), seeded from
/// <c>configs/openai/seed/data/openai_subscriptions.csv</c> the first time they are used or when OpenAI is set up.
/// </summary>
/// <remarks>
/// Works like <see cref="PriceTableService"/>: every change reads the table, applies the change, validates the whole
/// table (non-negative prices, ISO currencies, no two rows of a plan covering one day) and writes it back in one atomic
/// write, so a rejected change leaves the table as it was. Changes to one org's table are serialized in this process.
/// </remarks>
public sealed class SubscriptionTableService(IWarehouse warehouse, TableSchemaCatalog tables, ConfigsFolder configs, DeploymentEnvironment environment, TimeProvider time)
{
    public const string Table = "openai_subscriptions";

    public const string SeedFile = "openai/seed/data/openai_subscriptions.csv";

    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);

    public DateOnly Today => DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);

    public async Task<IReadOnlyList<OpenAiSubscription>> ListAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        var dataset = await DatasetAsync(org, cancellationToken);
        if (await warehouse.EnsureTableAsync(dataset, Schema, cancellationToken))
        {
            await ResetAsync(org, cancellationToken);
        }

        return await ReadAsync(dataset, cancellationToken);
    }

    /// <summary>
    /// Seeds the org's table with the shipped defaults when it is absent or empty; an existing table with rows is left
    /// alone, so running OpenAI setup again never overwrites the org's edits.
    /// </summary>
    /// <returns>The number of rows seeded (0 when the table already had rows).</returns>
    public async Task<int> SeedIfAbsentAsync(string org, CancellationToken cancellationToken)
    {
        var slug = OrgSlug.From(org);
        var gate = Gate(slug);
        await gate.WaitAsync(cancellationToken);
        try
        {
            var dataset = await DatasetAsync(slug, cancellationToken);
            var created = await warehouse.EnsureTableAsync(dataset, Schema, cancellationToken);
            if (!created && await warehouse.CountRowsAsync(dataset, Table, cancellationToken) > 0)
            {
                return 0;
            }

            return await WriteDefaultsAsync(slug, cancellationToken);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Adds a plan row; 409 when the plan already has a row from that day.</summary>
    public Task<OpenAiSubscription> AddAsync(OrgSlug org, OpenAiSubscription plan, CancellationToken cancellationToken) =>
        MutateAsync<OpenAiSubscription>(org, plans =>
        {
            if (plans.Any(p => p.PlanName == plan.PlanName && p.EffectiveFrom == plan.EffectiveFrom))
            {
                throw new ConflictException("Subscription exists", $"{plan.PlanName} already has a row from {plan.EffectiveFrom:yyyy-MM-dd}; PUT to change it.");
            }

            return ([.. plans, plan], plan);
        }, cancellationToken);

    /// <summary>
    /// Changes a plan from <paramref name="plan"/>'s <c>effective_from</c>: the row open on that day is closed the day
    /// before and the new row added, so earlier months keep their price; a row starting that very day is replaced.
    /// A change without <c>display_name</c> keeps the name of the row it follows.
    /// </summary>
    public Task<OpenAiSubscription> ChangeAsync(OrgSlug org, OpenAiSubscription plan, CancellationToken cancellationToken) =>
        MutateAsync<OpenAiSubscription>(org, plans =>
            EffectiveDated.Change(plans, plan, (change, open) => change with { DisplayName = change.DisplayName ?? open?.DisplayName }) is { } changed
                ? (changed.Rows, changed.Added)
                : throw new ResourceNotFoundException("Subscription plan", plan.PlanName), cancellationToken);

    /// <summary>Removes every row of a plan; 404 when it has none.</summary>
    public Task<int> DeleteAsync(OrgSlug org, string planName, CancellationToken cancellationToken) =>
        MutateAsync<int>(org, plans =>
        {
            var removed = plans.Count(p => p.PlanName == planName);
            return removed == 0
                ? throw new ResourceNotFoundException("Subscription plan", planName.Length > 64 ? planName[..64] : planName)
                : (plans.Where(p => p.PlanName != planName).ToList(), removed);
        }, cancellationToken);

    /// <summary>Replaces the org's table with the shipped defaults.</summary>
    public async Task<int> ResetAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await DatasetAsync(org, cancellationToken);
        return await WriteDefaultsAsync(org, cancellationToken);
    }

    private TableSchema Schema => tables.Get(Table);

    private SemaphoreSlim Gate(OrgSlug org) => _locks.GetOrAdd(org.Value, _ => new SemaphoreSlim(1, 1));

    private async Task<DatasetRef> DatasetAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        var dataset = DatasetRef.ForOrg(org, environment);
        return await warehouse.DatasetExistsAsync(dataset, cancellationToken)
            ? dataset
            : throw new ResourceNotFoundException("Organization dataset", dataset.Name);
    }

    private async Task<int> WriteDefaultsAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        var defaults = OpenAiSubscriptionCsv.Load(configs.Resolve(SeedFile));
        await WriteAllAsync(org, defaults, cancellationToken);
        return defaults.Count;
    }

    private async Task<IReadOnlyList<OpenAiSubscription>> ReadAsync(DatasetRef dataset, CancellationToken cancellationToken)
    {
        var rows = await warehouse.QueryAsync(dataset, new SqlQuery($"SELECT * FROM {Table} ORDER BY plan_name, effective_from", new Dictionary<string, object?>()), int.MaxValue, cancellationToken);
        return [.. rows.Select(FromRow)];
    }

    private async Task<T> MutateAsync<T>(OrgSlug org, Func<IReadOnlyList<OpenAiSubscription>, (List<OpenAiSubscription> Plans, T Result)> change, CancellationToken cancellationToken)
    {
        var gate = Gate(org);
        await gate.WaitAsync(cancellationToken);
        try
        {
            var (plans, result) = change(await ListAsync(org, cancellationToken));
            await WriteAllAsync(org, [.. OpenAiSubscriptionTable.Create(plans).Plans], cancellationToken);
            return result;
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task WriteAllAsync(OrgSlug org, IReadOnlyList<OpenAiSubscription> plans, CancellationToken cancellationToken)
    {
        var dataset = DatasetRef.ForOrg(org, environment);
        await using var write = await warehouse.BeginWriteAsync(dataset, Schema, new WriteSpec(WriteMode.Truncate, [], null, null, null), cancellationToken);
        await write.WriteRowsAsync(plans.Select(ToRow).ToAsyncEnumerable(), cancellationToken);
        await write.CommitAsync(cancellationToken);
    }

    private static IReadOnlyDictionary<string, object?> ToRow(OpenAiSubscription p) => new Dictionary<string, object?>
    {
        ["plan_name"] = p.PlanName,
        ["display_name"] = p.DisplayName,
        ["unit_price"] = p.UnitPrice,
        ["currency"] = p.Currency,
        ["billing_period"] = p.BillingPeriod,
        ["seats"] = p.Seats,
        ["effective_from"] = p.EffectiveFrom,
        ["effective_to"] = p.EffectiveTo,
        ["notes"] = p.Notes,
    };

    private static OpenAiSubscription FromRow(IReadOnlyDictionary<string, object?> row) => new(
        row.RequireText("plan_name"), row.Text("display_name"), row.DecimalOrNull("unit_price"), row.RequireText("currency"), row.RequireText("billing_period"),
        row.Long("seats"), row.Date("effective_from"), row.DateOrNull("effective_to"), row.Text("notes"));
}

/// <summary>The OpenAI subscription plans as a seed table of OpenAI integration setup.</summary>
public sealed class SubscriptionSeedTable(SubscriptionTableService subscriptions) : Core.Integrations.IOrgSeedTable
{
    public string Table => SubscriptionTableService.Table;

    public async Task<int> SeedIfAbsentAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await subscriptions.SeedIfAbsentAsync(org.Value, cancellationToken);
        return (await subscriptions.ListAsync(org, cancellationToken)).Count;
    }
}
