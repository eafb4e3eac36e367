using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.OpenAi;

/// <summary>
/// <c>openai.subscriptions</c>: the monthly cost of the OpenAI subscription plans (ChatGPT seats) the org holds, from
/// its editable <c>openai_subscriptions</c> table: for each month the run's slice touches, each plan's row in effect on
/// the month's first day (else the first row starting in the month) gives <c>seats × unit_price</c>, exact decimals,
/// in the plan's currency. Every plan gets a row, 0 when no seat is held, so an upsert on <c>(month, plan_name)</c>
/// also clears a plan the org gave up.
/// </summary>
public sealed class OpenAiSubscriptionsProcessor(IWarehouse warehouse, TimeProvider time) : IProcessor
{
    public const string SubscriptionsTable = "openai_subscriptions";

    public string PsType => "openai.subscriptions";

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var dataset = context.Run.OrgDataset;
        var slice = context.Run.Slice;
        var months = new List<DateOnly>();
        for (var m = new DateOnly(slice.StartDate.Year, slice.StartDate.Month, 1); m <= slice.EndDate; m = m.AddMonths(1))
        {
            months.Add(m);
        }

        var plans = (await warehouse.ListTablesAsync(dataset, cancellationToken)).Contains(SubscriptionsTable)
            ? await warehouse.QueryAsync(dataset, new SqlQuery($"SELECT * FROM {SubscriptionsTable} ORDER BY plan_name, effective_from", new Dictionary<string, object?>()), int.MaxValue, cancellationToken)
            : [];
        var now = time.GetUtcNow();
        var rows = new List<IReadOnlyDictionary<string, object?>>();
        decimal total = 0;
        foreach (var month in months)
        {
            var end = month.AddMonths(1).AddDays(-1);
            foreach (var plan in plans.GroupBy(p => p.RequireText("plan_name")))
            {
                bool Covers(IReadOnlyDictionary<string, object?> r, DateOnly day) =>
                    r.Date("effective_from") <= day && (r.Text("effective_to") is null || r.Date("effective_to") >= day);
                var row = plan.FirstOrDefault(r => Covers(r, month))
                    ?? plan.Where(r => r.Date("effective_from") > month && r.Date("effective_from") <= end).OrderBy(r => r.Date("effective_from")).FirstOrDefault();
                if (row is null)
                {
                    continue;
                }

                var seats = row.Long("seats");
                decimal? price = row.Text("unit_price") is null ? null : row.Decimal("unit_price");
                var cost = seats > 0 && price is { } p ? seats * p : 0m;
                total += cost;
                rows.Add(new Dictionary<string, object?>
                {
                    ["month"] = month,
                    ["plan_name"] = plan.Key,
                    ["display_name"] = row.Text("display_name"),
                    ["billing_period"] = row.Text("billing_period"),
                    ["seats"] = seats,
                    ["unit_price"] = price,
                    ["cost"] = cost,
                    ["currency"] = row.RequireText("currency"),
                    ["priced"] = seats == 0 || price is not null,
                    ["price_effective_from"] = row.Date("effective_from"),
                    ["computed_at"] = now,
                    ["pipeline_logging_id"] = context.Run.PipelineLoggingId,
                });
            }
        }

        var written = await context.RequireDestination().WriteRowsAsync(rows, cancellationToken);
        return new StepResult(written, new Dictionary<string, object?> { ["months"] = months.Count, ["total_cost"] = total });
    }
}
