using System.Globalization;
using System.Runtime.CompilerServices;
using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Kms.Google;
using Convergence.Processors.Integrations;
using Convergence.Processors.ProviderApis;
using Microsoft.Extensions.Logging;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>
/// <c>gcp.bq_etl</c> with <c>config.source: bigquery</c>: runs the step's standard SQL in the tenant's own BigQuery
/// project as the org's GCP service account and streams the result, page by page, into the step's destination with its
/// write mode (the same write, data-quality checks and commit as the other sources).
/// </summary>
/// <remarks>
/// <para>Config: <c>credential_step</c> (required) — the <c>integrations.kms_decrypt</c> step (provider <c>gcp</c>) whose
/// service-account key is used and whose integration is marked INVALID when Google refuses it (401/403);
/// <c>query_bigquery</c> (or <c>query</c>) — standard SQL whose placeholders are bound as named query parameters
/// (<c>{start_date}</c> → <c>@start_date</c> of type DATE), except back-quoted ones (<c>`{table}`</c>), which are table
/// paths validated by <see cref="BigQueryIdentifiers"/>; <c>project_id</c> — the project the query job runs and is
/// billed in (default: the key's <c>project_id</c>); <c>page_size</c> — rows per page (default 10,000);
/// <c>maximum_bytes_billed</c> — BigQuery's cost guard; <c>format</c> — <c>rows</c> (default: the result's columns are
/// the table's, by name, converted by <see cref="BigQueryCells"/>) or <c>gcp_billing_export</c> (the result rows are
/// Cloud Billing export rows, mapped and their credits netted by the export reader used for export files, and only rows
/// whose usage day is in the run's slice are written).</para>
/// </remarks>
internal sealed partial class BigQuerySource(BigQueryClient client, IControlPlaneStore store, TimeProvider time, ILogger<BigQuerySource> logger)
{
    public const string SourceName = "bigquery";
    public const int DefaultPageSize = 10_000;
    public const int MaxPageSize = 100_000;

    private const string RowsFormat = "rows";
    private const string BillingExportFormat = "gcp_billing_export";

    /// <summary>The request-time checks: the back-quoted table parameters of the step's query.</summary>
    public static void ValidateRequest(StepDefinition step, IReadOnlyDictionary<string, string> parameters)
    {
        if ((step.Config.TryGetValue("query_bigquery", out var q) ? q : step.Config.GetValueOrDefault("query")) is string sql)
        {
            BigQueryIdentifiers.ValidateParameters(sql, parameters);
        }
    }

    /// <summary>The org must have a GCP integration that Google has not refused.</summary>
    public async Task ValidateOrgRequestAsync(StepDefinition step, OrgSlug org, CancellationToken cancellationToken)
    {
        var stored = await store.FindActiveCredentialAsync(org, IntegrationProvider.Gcp, cancellationToken);
        if (stored is null)
        {
            throw RequestValidationException.For(
                "integration",
                $"organization '{org}' has no GCP integration; step '{step.StepId}' queries the organization's BigQuery with it. Connect a service-account key with POST /api/v1/integrations/{org}/gcp/setup first.");
        }

        if (stored.ValidationStatus == CredentialStatus.Invalid)
        {
            throw RequestValidationException.For(
                "integration",
                $"the GCP integration of organization '{org}' is INVALID ({stored.LastError ?? "refused by Google"}); step '{step.StepId}' needs it. Replace the key with POST /api/v1/integrations/{org}/gcp/setup, or check it again with POST /api/v1/integrations/{org}/gcp/validate.");
        }
    }

    public async Task<StepResult> LoadAsync(StepContext context, StepDestination destination, CancellationToken cancellationToken)
    {
        var step = $"Step '{context.Step.StepId}' ({context.Step.PsType}, source: bigquery)";
        var stored = IntegrationParameters.StoredCredential(context);
        if (stored.Provider != IntegrationProvider.Gcp || stored.OrgSlug != context.Run.Org)
        {
            throw new InvalidOperationException($"{step}: config.credential_step must decrypt this organization's gcp integration, not {stored.OrgSlug}/{stored.Provider.RouteName}.");
        }

        ServiceAccountKey key;
        try
        {
            key = ServiceAccountKey.Parse(context.Run.Secrets.RequireText(RunSecrets.Credential));
        }
        catch (FormatException ex)
        {
            throw new InvalidOperationException($"{step}: the stored GCP service-account key is unusable ({ex.Message}); replace it with POST /api/v1/integrations/{stored.OrgSlug}/gcp/setup.");
        }

        var project = context.Config.TryGetValue("project_id", out var p) && p is string { Length: > 0 } configured ? configured : key.ProjectId;
        if (!BigQueryIdentifiers.IsProjectId(project))
        {
            throw new InvalidOperationException(project is null
                ? $"{step}: the service-account key has no project_id; set config.project_id to the project the query runs in."
                : $"{step}: project '{project}' is not a GCP project id (6 to 30 lowercase letters, digits and hyphens, starting with a letter).");
        }

        var format = context.Config.TryGetValue("format", out var f) && f is string { Length: > 0 } named ? named : RowsFormat;
        if (format is not (RowsFormat or BillingExportFormat))
        {
            throw new InvalidOperationException($"{step}: config.format '{format}' is not {RowsFormat} or {BillingExportFormat}.");
        }

        var (text, field) = context.SqlText("query", SourceName);
        var sql = SqlTemplate.Bind(BigQueryIdentifiers.Substitute(text, context.Run.Placeholders), context.Run.Placeholders, context.Run.Pipeline.SourceFile, field);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["convergence_org"] = stored.OrgSlug.Value };
        var query = new BigQueryQuery(
            project!, sql.Text, sql.Parameters, PositiveInt(context, step, "page_size", MaxPageSize) is { } size ? (int)size : DefaultPageSize,
            PositiveInt(context, step, "maximum_bytes_billed", long.MaxValue), labels);

        var stats = new LoadStats();
        long written;
        try
        {
            var rows = format == BillingExportFormat
                ? BillingExportRows(query, key, context.Run.Slice, stats, cancellationToken)
                : TableRows(query, key, destination.Schema, stats, cancellationToken);
            written = await destination.WriteRowsAsync(rows, cancellationToken);
        }
        catch (ProviderCredentialRejectedException ex)
        {
            await IntegrationParameters.RecordRejectionAsync(store, stored, ex, time);
            throw;
        }

        LogLoaded(logger, context.Run.PipelineLoggingId, stats.Job ?? "?", stats.Pages, stats.Read, written);
        return StepResult.Of(
            written,
            ("source", SourceName),
            ("project_id", project),
            ("job", stats.Job),
            ("format", format),
            ("pages", stats.Pages),
            ("rows_read", stats.Read),
            ("rows_outside_slice", stats.Outside),
            ("table", destination.Schema.Name),
            ("write_mode", destination.Spec.Mode.ToConfigName()));
    }

    /// <summary>Result columns are the table's, by name; every table column must be in the result and nothing else.</summary>
    private async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> TableRows(
        BigQueryQuery query, ServiceAccountKey key, TableSchema table, LoadStats stats, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        int[]? positions = null;
        await foreach (var page in client.QueryAsync(query, key, cancellationToken))
        {
            stats.Seen(page);
            positions ??= Positions(page, table);
            var number = page.FirstRow;
            foreach (var row in page.Rows.EnumerateArray())
            {
                var values = Cells(page, row, number);
                var result = new Dictionary<string, object?>(table.Columns.Count, StringComparer.Ordinal);
                for (var c = 0; c < table.Columns.Count; c++)
                {
                    var column = table.Columns[c];
                    var field = page.Schema[positions[c]];
                    object? value;
                    try
                    {
                        value = BigQueryCells.ToColumn(values[positions[c]], field, column.Type);
                    }
                    catch (FormatException ex)
                    {
                        throw new BigQueryResultException($"BigQuery job {page.JobName}, row {number}, column '{column.Name}': {ex.Message}. Nothing was written.");
                    }

                    if (value is null && column.Required)
                    {
                        throw new BigQueryResultException($"BigQuery job {page.JobName}, row {number}, column '{column.Name}': is NULL, but the column of {table.Name} is required. Nothing was written.");
                    }

                    result[column.Name] = value;
                }

                stats.Read++;
                number++;
                yield return result;
            }
        }
    }

    /// <summary>Cloud Billing export rows through the export reader's mapping and credit netting; rows outside the slice are counted, not written.</summary>
    private async IAsyncEnumerable<IReadOnlyDictionary<string, object?>> BillingExportRows(
        BigQueryQuery query, ServiceAccountKey key, RunParameters slice, LoadStats stats, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        GcpBillingExportReader.FlatRowMapper? mapper = null;
        var flat = new Dictionary<string, string?>(StringComparer.Ordinal);
        var columns = GcpBillingExportReader.Columns;
        await foreach (var page in client.QueryAsync(query, key, cancellationToken))
        {
            stats.Seen(page);
            if (mapper is null)
            {
                RequireExportFields(page);
                mapper = new GcpBillingExportReader.FlatRowMapper($"bigquery:{page.JobName}", "row");
            }

            var number = page.FirstRow;
            foreach (var row in page.Rows.EnumerateArray())
            {
                var values = Cells(page, row, number);
                flat.Clear();
                object?[] record;
                try
                {
                    for (var i = 0; i < values.Length; i++)
                    {
                        BigQueryCells.Flatten(values[i], page.Schema[i], string.Empty, flat);
                    }

                    record = mapper.Map(flat, number);
                }
                catch (FormatException ex)
                {
                    throw new BigQueryResultException($"BigQuery job {page.JobName}, row {number}: {ex.Message}. Nothing was written.");
                }
                catch (RequestValidationException ex)
                {
                    throw new BigQueryResultException(string.Join(" ", ex.Errors.SelectMany(e => e.Value)));
                }

                stats.Read++;
                number++;
                var day = (DateOnly)record[GcpBillingExportReader.UsageDate]!;
                if (day < slice.StartDate || day > slice.EndDate)
                {
                    stats.Outside++;
                    continue;
                }

                var result = new Dictionary<string, object?>(columns.Count, StringComparer.Ordinal);
                for (var c = 0; c < columns.Count; c++)
                {
                    result[columns[c]] = record[c];
                }

                yield return result;
            }
        }
    }

    private static int[] Positions(BigQueryPage page, TableSchema table)
    {
        var byName = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < page.Schema.Count; i++)
        {
            if (!byName.TryAdd(page.Schema[i].Name, i))
            {
                throw new BigQueryResultException($"BigQuery job {page.JobName}: the result has two columns named '{page.Schema[i].Name}'. Nothing was written.");
            }
        }

        var missing = table.Columns.Where(c => !byName.ContainsKey(c.Name)).Select(c => c.Name).ToList();
        if (missing.Count > 0)
        {
            throw new BigQueryResultException(
                $"BigQuery job {page.JobName}: the result has no column {string.Join(", ", missing.Select(m => $"'{m}'"))} of table {table.Name}; select every column of the table by name (NULL AS x for none). Nothing was written.");
        }

        var extra = page.Schema.Where(s => !table.Columns.Any(c => string.Equals(c.Name, s.Name, StringComparison.OrdinalIgnoreCase))).Select(s => s.Name).ToList();
        if (extra.Count > 0)
        {
            throw new BigQueryResultException(
                $"BigQuery job {page.JobName}: the result's column {string.Join(", ", extra.Select(m => $"'{m}'"))} is not in table {table.Name}; select only the table's columns. Nothing was written.");
        }

        return [.. table.Columns.Select(c => byName[c.Name])];
    }

    private static void RequireExportFields(BigQueryPage page)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        void Collect(IReadOnlyList<BigQueryField> fields, string prefix)
        {
            foreach (var field in fields)
            {
                names.Add(prefix + field.Name);
                if (field.IsRecord && !field.IsRepeated)
                {
                    Collect(field.Fields, prefix + field.Name + ".");
                }
            }
        }

        Collect(page.Schema, string.Empty);
        var missing = GcpBillingExportReader.Fields.Where(f => f.Required && !names.Contains(f.Source)).Select(f => f.Source).ToList();
        if (missing.Count > 0)
        {
            throw new BigQueryResultException(
                $"BigQuery job {page.JobName}: the result has no {string.Join(", ", missing.Select(m => $"'{m}'"))}; format gcp_billing_export needs the Cloud Billing export's columns (SELECT the export table's columns by their export names). Nothing was written.");
        }
    }

    private static System.Text.Json.JsonElement[] Cells(BigQueryPage page, System.Text.Json.JsonElement row, long number)
    {
        try
        {
            return BigQueryCells.RowValues(row, page.Schema.Count);
        }
        catch (FormatException ex)
        {
            throw new ProviderResponseException($"BigQuery job {page.JobName}, page {page.Number}, row {number}: {ex.Message}; the response is malformed. Nothing was written.");
        }
    }

    private static long? PositiveInt(StepContext context, string step, string key, long max)
    {
        if (!context.Config.TryGetValue(key, out var value) || value is null)
        {
            return null;
        }

        return long.TryParse(Convert.ToString(value, CultureInfo.InvariantCulture), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= max
            ? n
            : throw new InvalidOperationException($"{step}: config.{key} must be a whole number from 1 to {max.ToString(CultureInfo.InvariantCulture)}, not '{value}'.");
    }

    /// <summary>What the load saw, for the step's metadata.</summary>
    private sealed class LoadStats
    {
        public string? Job { get; private set; }

        public int Pages { get; private set; }

        public long Read { get; set; }

        public long Outside { get; set; }

        public void Seen(BigQueryPage page)
        {
            Job = page.JobName;
            Pages = page.Number;
        }
    }

    [LoggerMessage(EventId = 5113, Level = LogLevel.Information, Message = "Run {PipelineLoggingId}: BigQuery job {JobName}: {Pages} pages, {RowsRead} rows read, {RowsWritten} written")]
    private static partial void LogLoaded(ILogger logger, string pipelineLoggingId, string jobName, int pages, long rowsRead, long rowsWritten);
}
