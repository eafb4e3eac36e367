using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.Llm;

/// <summary>
/// <c>costs.reconcile</c>: per day of the run's slice, the cost Convergence computed from usage
/// (<c>{provider}_cost_daily</c>, priced rows) against what the provider billed (<c>{provider}_billed_cost_daily</c>),
/// written to the step's destination (<c>{provider}_cost_reconciliation_daily</c>). Sums are exact decimals; the
/// difference in percent of the billed cost is what a <c>dq_checks</c> expression warns on (above 2 % by default in the
/// shipped pipelines). Days where either side is missing are written with the side as 0 and a null percentage.
/// </summary>
public sealed class CostReconciliationProcessor(IWarehouse warehouse, TimeProvider time) : IProcessor
{
    public string PsType => "costs.reconcile";

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var provider = context.RequireConfigString("provider");
        if (provider is not ("openai" or "anthropic" or "deepseek"))
        {
            throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}): config.provider must be openai, anthropic or deepseek.");
        }

        var dataset = context.Run.OrgDataset;
        var slice = context.Run.Slice;
        var tables = await warehouse.ListTablesAsync(dataset, cancellationToken);
        var parameters = new Dictionary<string, object?> { ["start"] = slice.StartDate, ["end"] = slice.EndDate };
        var computed = await SumByDayAsync(dataset, tables, $"{provider}_cost_daily", "total_cost", "AND unpriced_reason IS NULL", parameters, cancellationToken);
        var billed = await SumByDayAsync(dataset, tables, $"{provider}_billed_cost_daily", "amount", string.Empty, parameters, cancellationToken);
        var now = time.GetUtcNow();
        var rows = computed.Keys.Union(billed.Keys).Order().Select(day =>
        {
            var c = computed.GetValueOrDefault(day);
            var b = billed.GetValueOrDefault(day);
            return (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?>
            {
                ["usage_date"] = day,
                ["provider"] = provider,
                ["computed_cost"] = c,
                ["billed_cost"] = b,
                ["difference"] = c - b,
                ["difference_pct"] = b == 0 ? null : (double)Math.Round((c - b) / b * 100m, 4),
                ["currency"] = "USD",
                ["reconciled_at"] = now,
                ["pipeline_logging_id"] = context.Run.PipelineLoggingId,
            };
        }).ToList();
        var written = await context.RequireDestination().WriteRowsAsync(rows, cancellationToken);
        return new StepResult(written, new Dictionary<string, object?>
        {
            ["computed_cost"] = computed.Values.Sum(),
            ["billed_cost"] = billed.Values.Sum(),
        });
    }

    private async Task<Dictionary<DateOnly, decimal>> SumByDayAsync(
        DatasetRef dataset, IReadOnlyList<string> tables, string table, string column, string filter, Dictionary<string, object?> parameters, CancellationToken cancellationToken)
    {
        var sums = new Dictionary<DateOnly, decimal>();
        if (!tables.Contains(table))
        {
            return sums;
        }

        // Rows, not SUM(): the warehouse may hold NUMERIC as text, and money is added as decimals here.
        var rows = await warehouse.QueryAsync(
            dataset, new SqlQuery($"SELECT usage_date, {column} AS amount FROM {table} WHERE usage_date >= @start AND usage_date <= @end {filter}", parameters), int.MaxValue, cancellationToken);
        foreach (var row in rows)
        {
            var day = row.Date("usage_date");
            sums[day] = sums.GetValueOrDefault(day) + row.Decimal("amount");
        }

        return sums;
    }
}
