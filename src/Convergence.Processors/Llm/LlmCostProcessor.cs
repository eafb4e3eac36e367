using Convergence.Core.Costs;
using Convergence.Core.Pipelines;
using Convergence.Core.Pricing;
using Convergence.Core.Storage;

namespace Convergence.Processors.Llm;

/// <summary>
/// <c>{provider}.cost</c>: prices the run's date slice of the provider's usage — rows fetched from its usage API
/// (<c>{provider}_usage_daily_raw</c>) and usage events posted for it (<c>llm_usage_events</c>, summed per day, model,
/// project, key and batch flag) — with the org's price list in effect on each day, and writes one cost row per usage
/// row to the step's destination (<c>{provider}_cost_daily</c>, <c>merge_partition</c> on <c>usage_date</c>).
/// </summary>
/// <remarks>
/// Rows no price applies to are kept with <c>priced = false</c>, zero costs and the reason, never silently as zero cost;
/// the step's metadata counts them, and a pipeline's <c>dq_checks</c> can warn on <c>unpriced_reason IS NULL</c>.
/// </remarks>
public abstract class LlmCostProcessor(IWarehouse warehouse, IOrgPriceLists priceLists, TimeProvider time) : IProcessor
{
    public const string UsageEventsTable = "llm_usage_events";

    public abstract string PsType { get; }

    /// <summary>The provider's route name: <c>openai</c>, <c>anthropic</c> or <c>deepseek</c>.</summary>
    protected abstract string ProviderName { get; }

    protected abstract LlmProvider Provider { get; }

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var org = context.Run.Org ?? throw new InvalidOperationException($"{PsType} needs an org.");
        var dataset = context.Run.OrgDataset;
        var slice = context.Run.Slice;
        var tables = await warehouse.ListTablesAsync(dataset, cancellationToken);
        var usage = new List<(LlmUsageRow Row, string Source)>();
        var parameters = new Dictionary<string, object?> { ["start"] = slice.StartDate, ["end"] = slice.EndDate, ["provider"] = ProviderName };

        var rawTable = $"{ProviderName}_usage_daily_raw";
        if (tables.Contains(rawTable))
        {
            var rows = await warehouse.QueryAsync(
                dataset,
                new SqlQuery($"SELECT * FROM {rawTable} WHERE usage_date >= @start AND usage_date <= @end ORDER BY usage_date, model, project_id, api_key_id, batch", parameters),
                int.MaxValue,
                cancellationToken);
            usage.AddRange(rows.Select(r => (ToUsage(r), r.Text("source") ?? "usage_api")));
        }

        if (tables.Contains(UsageEventsTable))
        {
            var rows = await warehouse.QueryAsync(
                dataset,
                new SqlQuery(
                    $"""
                    SELECT usage_date, model, project_id, api_key_id, batch,
                           SUM(uncached_input_tokens) AS uncached_input_tokens, SUM(cached_input_tokens) AS cached_input_tokens,
                           SUM(cache_write_5m_tokens) AS cache_write_5m_tokens, SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
                           SUM(output_tokens) AS output_tokens, COUNT(*) AS requests
                    FROM {UsageEventsTable}
                    WHERE provider = @provider AND usage_date >= @start AND usage_date <= @end
                    GROUP BY usage_date, model, project_id, api_key_id, batch
                    ORDER BY usage_date, model, project_id, api_key_id, batch
                    """,
                    parameters),
                int.MaxValue,
                cancellationToken);
            usage.AddRange(rows.Select(r => (ToUsage(r), "events")));
        }

        var calculator = new LlmCostCalculator(await priceLists.GetAsync(org, ProviderName, cancellationToken));
        var now = time.GetUtcNow();
        var unpriced = new Dictionary<string, int>(StringComparer.Ordinal);
        decimal total = 0;
        var costRows = new List<IReadOnlyDictionary<string, object?>>(usage.Count);
        foreach (var (row, source) in usage)
        {
            var cost = calculator.Price(row);
            if (!cost.IsPriced)
            {
                var reason = ReasonText(cost);
                unpriced[reason] = unpriced.GetValueOrDefault(reason) + 1;
            }

            total += cost.Total;
            costRows.Add(ToCostRow(row, source, cost, now, context.Run.PipelineLoggingId));
        }

        // Always written, even empty: merge_partition then clears the slice of rows a previous run left.
        var written = await context.RequireDestination().WriteRowsAsync(costRows, cancellationToken);
        return new StepResult(
            written,
            new Dictionary<string, object?>
            {
                ["provider"] = ProviderName,
                ["usage_rows"] = usage.Count,
                ["total_cost"] = total,
                ["unpriced_rows"] = unpriced.Values.Sum(),
                ["unpriced_reasons"] = unpriced,
            });
    }

    internal LlmUsageRow ToUsage(IReadOnlyDictionary<string, object?> r) => new(
        r.Date("usage_date"), Provider, r.RequireText("model"), r.Text("project_id"), r.Text("api_key_id"), r.Bool("batch"),
        r.Long("uncached_input_tokens"), r.Long("cached_input_tokens"), r.Long("cache_write_5m_tokens"), r.Long("cache_write_1h_tokens"),
        r.Long("output_tokens"), r.LongOrNull("requests"), r.Long("web_search_requests"));

    /// <summary>The <c>unpriced_reason</c> column's text for an unpriced cost.</summary>
    public static string ReasonText(LlmCost cost) => cost.Reason switch
    {
        UnpricedReason.UnknownModel => "unknown_model",
        UnpricedReason.NoPriceOnDate => "no_price_on_date",
        UnpricedReason.MissingPartPrice => $"missing_part_price:{cost.Detail}",
        UnpricedReason.NoBatchPrice => "no_batch_price",
        UnpricedReason.NegativeTokens => "negative_tokens",
        _ => cost.Reason.ToString(),
    };

    private IReadOnlyDictionary<string, object?> ToCostRow(LlmUsageRow u, string source, LlmCost cost, DateTimeOffset now, string runId) => new Dictionary<string, object?>
    {
        ["usage_date"] = u.Day,
        ["provider"] = ProviderName,
        ["model"] = u.Model,
        ["project_id"] = u.ProjectId,
        ["api_key_id"] = u.ApiKeyId,
        ["batch"] = u.Batch,
        ["uncached_input_tokens"] = u.UncachedInputTokens,
        ["cached_input_tokens"] = u.CachedInputTokens,
        ["cache_write_5m_tokens"] = u.CacheWrite5mTokens,
        ["cache_write_1h_tokens"] = u.CacheWrite1hTokens,
        ["output_tokens"] = u.OutputTokens,
        ["requests"] = u.Requests,
        ["web_search_requests"] = u.WebSearches,
        ["source"] = source,
        ["uncached_input_cost"] = cost.UncachedInput,
        ["cached_input_cost"] = cost.CachedInput,
        ["cache_write_5m_cost"] = cost.CacheWrite5m,
        ["cache_write_1h_cost"] = cost.CacheWrite1h,
        ["output_cost"] = cost.Output,
        ["total_cost"] = cost.Total,
        ["list_cost"] = cost.ListTotal,
        ["currency"] = cost.Currency,
        ["priced"] = cost.IsPriced,
        ["unpriced_reason"] = cost.IsPriced ? null : ReasonText(cost),
        ["price_model_id"] = cost.Price?.ModelId,
        ["price_effective_from"] = cost.Price?.EffectiveFrom,
        ["batch_discount_fallback"] = cost.BatchDiscountFallback,
        ["ingested_at"] = now,
        ["pipeline_logging_id"] = runId,
    };
}

/// <summary><c>openai.cost</c>.</summary>
public sealed class OpenAiCostProcessor(IWarehouse warehouse, IOrgPriceLists priceLists, TimeProvider time) : LlmCostProcessor(warehouse, priceLists, time)
{
    public override string PsType => "openai.cost";

    protected override string ProviderName => "openai";

    protected override LlmProvider Provider => LlmProvider.OpenAI;
}

/// <summary><c>anthropic.cost</c>.</summary>
public sealed class AnthropicCostProcessor(IWarehouse warehouse, IOrgPriceLists priceLists, TimeProvider time) : LlmCostProcessor(warehouse, priceLists, time)
{
    public override string PsType => "anthropic.cost";

    protected override string ProviderName => "anthropic";

    protected override LlmProvider Provider => LlmProvider.Anthropic;
}

/// <summary><c>deepseek.cost</c>.</summary>
public sealed class DeepSeekCostProcessor(IWarehouse warehouse, IOrgPriceLists priceLists, TimeProvider time) : LlmCostProcessor(warehouse, priceLists, time)
{
    public override string PsType => "deepseek.cost";

    protected override string ProviderName => "deepseek";

    protected override LlmProvider Provider => LlmProvider.DeepSeek;
}
