using System.Text.Json;
using Convergence.Core.Configuration;
using Convergence.Core.Costs;
using Convergence.Core.Errors;
using Convergence.Core.Focus;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.Focus;

/// <summary>
/// <c>focus.normalize</c>: rebuilds the run's date slice of <c>cost_focus_daily</c> from every provider's cost table in
/// the org's dataset (<c>openai_cost_daily</c>, <c>anthropic_cost_daily</c>, <c>deepseek_cost_daily</c>,
/// <c>gcp_billing_daily_raw</c>, and the held seats of <c>openai_subscriptions_monthly</c> on each month's first day), mapped to
/// FinOps FOCUS 1.2 and checked with the column rules of <c>configs/focus/focus_v1.2_columns.csv</c> before anything is
/// written. Rebuilding the whole slice from all sources keeps the unified table exact whichever provider's pipeline ran
/// last; unpriced rows stay in their cost table (with the reason) and are not presented as FOCUS costs.
/// </summary>
public sealed class FocusNormalizeProcessor : IProcessor
{
    public const string Type = "focus.normalize";

    private static readonly (string Provider, LlmProvider Llm)[] LlmSources =
        [("openai", LlmProvider.OpenAI), ("anthropic", LlmProvider.Anthropic), ("deepseek", LlmProvider.DeepSeek)];

    public const string GcpTable = "gcp_billing_daily_raw";

    public const string SubscriptionsTable = "openai_subscriptions_monthly";

    private readonly IWarehouse _warehouse;
    private readonly Lazy<FocusValidator> _validator;
    private readonly Lazy<GcpFocusMapper> _gcp;

    public FocusNormalizeProcessor(IWarehouse warehouse, ConfigsFolder configs)
    {
        _warehouse = warehouse;
        _validator = new(() => new FocusValidator(FocusColumnCatalog.Load(configs.Resolve(FocusColumnCatalog.RelativePath))));
        _gcp = new(() => new GcpFocusMapper(GcpServiceCategoryMap.Load(configs.Resolve(GcpServiceCategoryMap.RelativePath))));
    }

    public string PsType => Type;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var org = context.Run.Org ?? throw new InvalidOperationException($"{Type} needs an org.");
        var dataset = context.Run.OrgDataset;
        var slice = context.Run.Slice;
        var tables = await _warehouse.ListTablesAsync(dataset, cancellationToken);
        var parameters = new Dictionary<string, object?> { ["start"] = slice.StartDate, ["end"] = slice.EndDate };
        var mapped = new List<(FocusRow Row, string Provider, string Table, DateOnly Day)>();
        var perProvider = new Dictionary<string, int>(StringComparer.Ordinal);

        foreach (var (provider, llm) in LlmSources)
        {
            var table = $"{provider}_cost_daily";
            if (!tables.Contains(table))
            {
                continue;
            }

            var rows = await _warehouse.QueryAsync(
                dataset,
                new SqlQuery($"SELECT * FROM {table} WHERE usage_date >= @start AND usage_date <= @end AND unpriced_reason IS NULL ORDER BY usage_date, model, project_id, api_key_id, batch", parameters),
                int.MaxValue,
                cancellationToken);
            foreach (var r in rows)
            {
                var usage = new LlmUsageRow(
                    r.Date("usage_date"), llm, r.RequireText("model"), r.Text("project_id"), r.Text("api_key_id"), r.Bool("batch"),
                    r.Long("uncached_input_tokens"), r.Long("cached_input_tokens"), r.Long("cache_write_5m_tokens"), r.Long("cache_write_1h_tokens"),
                    r.Long("output_tokens"), r.Long("requests"), r.Long("web_search_requests"));
                var focus = LlmFocusMapper.Map(
                    usage, r.Decimal("total_cost"), r.Decimal("list_cost"), r.RequireText("currency"), r.Text("price_model_id") ?? usage.Model,
                    r.Text("price_effective_from") is null ? usage.Day : r.Date("price_effective_from"), $"{org}/{provider}");
                mapped.Add((focus, provider, table, usage.Day));
            }

            perProvider[provider] = rows.Count;
        }

        if (tables.Contains(GcpTable))
        {
            var rows = await _warehouse.QueryAsync(
                dataset,
                new SqlQuery($"SELECT * FROM {GcpTable} WHERE usage_date >= @start AND usage_date <= @end ORDER BY billing_account_id, usage_date, source_uri, source_line", parameters),
                int.MaxValue,
                cancellationToken);
            foreach (var r in rows)
            {
                mapped.Add((_gcp.Value.Map(ToGcpRow(r)), "gcp", GcpTable, r.Date("usage_date")));
            }

            perProvider["gcp"] = rows.Count;
        }

        if (tables.Contains(SubscriptionsTable))
        {
            // Months whose first day is in the slice: the month's seats are charged on that day.
            var rows = await _warehouse.QueryAsync(
                dataset,
                new SqlQuery($"SELECT * FROM {SubscriptionsTable} WHERE month >= @start AND month <= @end AND seats > 0 AND priced ORDER BY month, plan_name", parameters),
                int.MaxValue,
                cancellationToken);
            foreach (var r in rows)
            {
                var month = new SubscriptionMonth(
                    r.Date("month"), r.RequireText("plan_name"), r.Text("display_name"), r.RequireText("billing_period"), r.Long("seats"), r.Decimal("unit_price"),
                    r.Decimal("cost"), r.RequireText("currency"), r.Text("price_effective_from") is null ? r.Date("month") : r.Date("price_effective_from"));
                mapped.Add((SubscriptionFocusMapper.Map(month, $"{org}/openai"), "openai", SubscriptionsTable, month.Month));
            }

            perProvider["openai_subscriptions"] = rows.Count;
        }

        var violations = _validator.Value.Validate(mapped.Select(m => m.Row));
        if (violations.Count > 0)
        {
            throw new DataQualityException(
                $"{violations.Count} FOCUS 1.2 rule violation(s); nothing was written. First: {string.Join("; ", violations.Take(5))}.");
        }

        var runId = context.Run.PipelineLoggingId;
        var written = await context.RequireDestination().WriteRowsAsync(mapped.Select(m => ToRow(m.Row, m.Provider, m.Table, m.Day, runId)), cancellationToken);
        return new StepResult(
            written,
            new Dictionary<string, object?>
            {
                ["rows_by_provider"] = perProvider,
                ["effective_cost"] = mapped.Sum(m => m.Row.EffectiveCost),
                ["focus_violations"] = 0,
            });
    }

    /// <summary>A stored billing-export row as the FOCUS mapper takes it (credits and labels from their JSON columns).</summary>
    internal static GcpBillingRow ToGcpRow(IReadOnlyDictionary<string, object?> r)
    {
        var credits = new List<GcpCredit>();
        if (r.Text("credits") is { Length: > 0 } creditsJson)
        {
            using var json = JsonDocument.Parse(creditsJson);
            foreach (var credit in json.RootElement.EnumerateArray())
            {
                var amount = credit.TryGetProperty("amount", out var a) ? a : default;
                var text = amount.ValueKind == JsonValueKind.String ? amount.GetString()! : amount.GetRawText();
                credits.Add(new GcpCredit(
                    credit.TryGetProperty("name", out var n) ? n.GetString() ?? "credit" : "credit",
                    decimal.Parse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture),
                    credit.TryGetProperty("type", out var t) ? t.GetString() : null));
            }
        }

        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (r.Text("labels") is { Length: > 0 } labelsJson)
        {
            using var json = JsonDocument.Parse(labelsJson);
            if (json.RootElement.ValueKind == JsonValueKind.Object)
            {
                foreach (var label in json.RootElement.EnumerateObject())
                {
                    labels[label.Name] = label.Value.ValueKind == JsonValueKind.String ? label.Value.GetString()! : label.Value.GetRawText();
                }
            }
        }

        decimal? Optional(string column) => r.Text(column) is null ? null : r.Decimal(column);
        DateTimeOffset Time(string column) => DateTimeOffset.Parse(r.RequireText(column), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);
        return new GcpBillingRow(
            r.RequireText("billing_account_id"), r.Text("service_id") ?? string.Empty, r.Text("service_description") ?? string.Empty, r.Text("sku_id") ?? string.Empty,
            r.Text("sku_description"), r.Text("project_id"), r.Text("project_name"), Time("usage_start_time"), Time("usage_end_time"), r.Decimal("cost"), credits,
            r.RequireText("currency"), Optional("usage_amount"), r.Text("usage_unit"), Optional("usage_amount_in_pricing_units"), r.Text("usage_pricing_unit"),
            r.Text("location"), r.Text("region"), labels, r.Text("invoice_month"), r.Text("cost_type"), null, r.Text("resource_name"));
    }

    internal static IReadOnlyDictionary<string, object?> ToRow(FocusRow row, string provider, string sourceTable, DateOnly chargeDate, string runId)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["charge_date"] = chargeDate,
            ["x_provider"] = provider,
            ["x_source_table"] = sourceTable,
            ["pipeline_logging_id"] = runId,
        };
        foreach (var (column, read) in FocusRow.Columns)
        {
            var value = read(row);
            values[Snake(column)] = value is IReadOnlyDictionary<string, string> tags ? JsonSerializer.Serialize(tags) : value;
        }

        return values;
    }

    /// <summary>FOCUS column id (<c>BilledCost</c>) to the table's column name (<c>billed_cost</c>).</summary>
    internal static string Snake(string column)
    {
        var builder = new System.Text.StringBuilder(column.Length + 4);
        for (var i = 0; i < column.Length; i++)
        {
            if (char.IsUpper(column[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(column[i]));
        }

        return builder.ToString();
    }
}
