using System.Runtime.CompilerServices;
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
        var tables = await _warehouse.ListTablesAsync(context.Run.OrgDataset, cancellationToken);
        var tally = new Tally();

        // Rows are read, mapped, checked and written one at a time (memory stays flat for a whole billing export); the
        // write is one transaction, so a rule violation found after rows were handed to it still leaves nothing written.
        var written = await context.RequireDestination().WriteRowsAsync(
            CheckedRowsAsync(MappedAsync(context.Run, org.ToString(), tables, tally, cancellationToken), context.Run.PipelineLoggingId, tally, cancellationToken),
            cancellationToken);
        return new StepResult(
            written,
            new Dictionary<string, object?>
            {
                ["rows_by_provider"] = tally.PerProvider,
                ["effective_cost"] = tally.EffectiveCost,
                ["focus_violations"] = 0,
            });
    }

    /// <summary>What the rows seen so far add up to.</summary>
    private sealed class Tally
    {
        public Dictionary<string, int> PerProvider { get; } = new(StringComparer.Ordinal);

        public decimal EffectiveCost { get; set; }

        public void Source(string key) => PerProvider.TryAdd(key, 0);

        public void Read(string key) => PerProvider[key]++;
    }

    /// <summary>
    /// The rows to write, each validated first. After the first violation nothing more is handed to the write, but every
    /// row is still checked, so the error counts them all; it is thrown at the end, which rolls the write back.
    /// </summary>
    private async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> CheckedRowsAsync(
        IAsyncEnumerable<(FocusRow Row, string Provider, string Table, DateOnly Day)> mapped,
        string runId,
        Tally tally,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var validator = _validator.Value;
        var found = new List<FocusViolation>();
        var first = new List<FocusViolation>();
        var count = 0;
        var index = 0;
        await foreach (var (row, provider, table, day) in mapped.WithCancellation(cancellationToken))
        {
            validator.ValidateRow(row, index++, found);
            if (found.Count > 0)
            {
                count += found.Count;
                first.AddRange(found.Take(5 - first.Count));
                found.Clear();
                continue;
            }

            if (count == 0)
            {
                tally.EffectiveCost += row.EffectiveCost;
                yield return ToRow(row, provider, table, day, runId);
            }
        }

        if (count > 0)
        {
            throw new DataQualityException($"{count} FOCUS 1.2 rule violation(s); nothing was written. First: {string.Join("; ", first)}.");
        }
    }

    /// <summary>Every source row of the run's slice, mapped to FOCUS, source by source, read as it is enumerated.</summary>
    private async IAsyncEnumerable<(FocusRow Row, string Provider, string Table, DateOnly Day)> MappedAsync(
        RunContext run, string org, IReadOnlyList<string> tables, Tally tally, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var dataset = run.OrgDataset;
        var parameters = new Dictionary<string, object?> { ["start"] = run.Slice.StartDate, ["end"] = run.Slice.EndDate };
        IAsyncEnumerable<IReadOnlyDictionary<string, object?>> Read(string sql) => _warehouse.StreamAsync(dataset, new SqlQuery(sql, parameters), cancellationToken);

        foreach (var (provider, llm) in LlmSources)
        {
            var table = $"{provider}_cost_daily";
            if (!tables.Contains(table))
            {
                continue;
            }

            tally.Source(provider);
            await foreach (var r in Read($"SELECT * FROM {table} WHERE usage_date >= @start AND usage_date <= @end AND unpriced_reason IS NULL ORDER BY usage_date, model, project_id, api_key_id, batch"))
            {
                var usage = new LlmUsageRow(
                    r.Date("usage_date"), llm, r.RequireText("model"), r.Text("project_id"), r.Text("api_key_id"), r.Bool("batch"),
                    r.Long("uncached_input_tokens"), r.Long("cached_input_tokens"), r.Long("cache_write_5m_tokens"), r.Long("cache_write_1h_tokens"),
                    r.Long("output_tokens"), r.LongOrNull("requests"), r.Long("web_search_requests"));
                var focus = LlmFocusMapper.Map(
                    usage, r.Decimal("total_cost"), r.Decimal("list_cost"), r.RequireText("currency"), r.Text("price_model_id") ?? usage.Model,
                    r.Text("price_effective_from") is null ? usage.Day : r.Date("price_effective_from"), $"{org}/{provider}");
                tally.Read(provider);
                yield return (focus, provider, table, usage.Day);
            }
        }

        if (tables.Contains(GcpTable))
        {
            tally.Source("gcp");
            await foreach (var r in Read($"SELECT * FROM {GcpTable} WHERE usage_date >= @start AND usage_date <= @end ORDER BY billing_account_id, usage_date, source_uri, source_line"))
            {
                tally.Read("gcp");
                yield return (_gcp.Value.Map(ToGcpRow(r)), "gcp", GcpTable, r.Date("usage_date"));
            }
        }

        if (tables.Contains(SubscriptionsTable))
        {
            // Months whose first day is in the slice: the month's seats are charged on that day.
            tally.Source("openai_subscriptions");
            await foreach (var r in Read($"SELECT * FROM {SubscriptionsTable} WHERE month >= @start AND month <= @end AND seats > 0 AND priced ORDER BY month, plan_name"))
            {
                var month = new SubscriptionMonth(
                    r.Date("month"), r.RequireText("plan_name"), r.Text("display_name"), r.RequireText("billing_period"), r.Long("seats"), r.Decimal("unit_price"),
                    r.Decimal("cost"), r.RequireText("currency"), r.Text("price_effective_from") is null ? r.Date("month") : r.Date("price_effective_from"));
                tally.Read("openai_subscriptions");
                yield return (SubscriptionFocusMapper.Map(month, $"{org}/openai"), "openai", SubscriptionsTable, month.Month);
            }
        }
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
        foreach (var (name, read) in SnakeColumns)
        {
            var value = read(row);
            values[name] = value is IReadOnlyDictionary<string, string> tags ? JsonSerializer.Serialize(tags) : value;
        }

        return values;
    }

    /// <summary>The FOCUS columns under the table's names, with their readers (named once, not per row).</summary>
    private static readonly (string Name, Func<FocusRow, object?> Read)[] SnakeColumns = [.. FocusRow.Columns.Select(c => (Snake(c.Key), c.Value))];

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
