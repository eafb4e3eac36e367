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
/// the org's dataset (<c>openai_cost_daily</c>, <c>anthropic_cost_daily</c>, <c>deepseek_cost_daily</c>), mapped to
/// FinOps FOCUS 1.2 and checked with the column rules of <c>configs/focus/focus_v1.2_columns.csv</c> before anything is
/// written. Rebuilding the whole slice from all sources keeps the unified table exact whichever provider's pipeline ran
/// last; unpriced rows stay in their cost table (with the reason) and are not presented as FOCUS costs.
/// </summary>
public sealed class FocusNormalizeProcessor : IProcessor
{
    public const string Type = "focus.normalize";

    private static readonly (string Provider, LlmProvider Llm)[] LlmSources =
        [("openai", LlmProvider.OpenAI), ("anthropic", LlmProvider.Anthropic), ("deepseek", LlmProvider.DeepSeek)];

    private readonly IWarehouse _warehouse;
    private readonly Lazy<FocusValidator> _validator;

    public FocusNormalizeProcessor(IWarehouse warehouse, ConfigsFolder configs)
    {
        _warehouse = warehouse;
        _validator = new(() => new FocusValidator(FocusColumnCatalog.Load(configs.Resolve(FocusColumnCatalog.RelativePath))));
    }

    public string PsType => Type;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var org = context.Run.Org ?? throw new InvalidOperationException($"{Type} needs an org.");
        var dataset = context.Run.OrgDataset;
        var slice = context.Run.Slice;
        var tables = await _warehouse.ListTablesAsync(dataset, cancellationToken);
        var parameters = new Dictionary<string, object?> { ["start"] = slice.StartDate, ["end"] = slice.EndDate };
        var mapped = new List<(FocusRow Row, string Provider, string Table)>();
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
                mapped.Add((focus, provider, table));
            }

            perProvider[provider] = rows.Count;
        }

        var violations = _validator.Value.Validate(mapped.Select(m => m.Row));
        if (violations.Count > 0)
        {
            throw new DataQualityException(
                $"{violations.Count} FOCUS 1.2 rule violation(s); nothing was written. First: {string.Join("; ", violations.Take(5))}.");
        }

        var runId = context.Run.PipelineLoggingId;
        var written = await context.RequireDestination().WriteRowsAsync(mapped.Select(m => ToRow(m.Row, m.Provider, m.Table, runId)), cancellationToken);
        return new StepResult(
            written,
            new Dictionary<string, object?>
            {
                ["rows_by_provider"] = perProvider,
                ["effective_cost"] = mapped.Sum(m => m.Row.EffectiveCost),
                ["focus_violations"] = 0,
            });
    }

    internal static IReadOnlyDictionary<string, object?> ToRow(FocusRow row, string provider, string sourceTable, string runId)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["charge_date"] = DateOnly.FromDateTime(row.ChargePeriodStart.UtcDateTime),
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
