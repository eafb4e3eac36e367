using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Processors.Gcp.BigQuery;
using Convergence.Processors.Imports;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Convergence.Processors.Gcp;

/// <summary>
/// <c>gcp.bq_etl</c>: writes rows from its source to the step's destination with its write mode.
/// </summary>
/// <remarks>
/// <para><c>config.source: warehouse</c> (the default) runs <c>config.query</c> in the org's dataset on the configured
/// warehouse. Dialects: a config may carry <c>query_sqlite</c>, <c>query_postgres</c> or <c>query_bigquery</c> beside a
/// portable <c>query</c>; the one matching the warehouse wins. Placeholders in the SQL are bound parameters.</para>
/// <para><c>config.source: file</c> streams a GCP billing export file named by the run parameter <c>source_uri</c>,
/// relative to the import folder (<see cref="ImportDirectory"/>): CSV or JSON lines (<c>config.format</c>: csv, jsonl or
/// auto by extension). Only rows whose usage day is in the run's slice are written. The file is checked when the run is
/// requested, so a missing or unsafe <c>source_uri</c> is a 422 before anything is queued; a row that does not parse
/// fails the step naming file, line and column, and nothing is written.</para>
/// <para><c>config.source: bigquery</c> runs <c>config.query_bigquery</c> (or <c>query</c>) in the tenant's own BigQuery
/// project with the org's GCP integration and streams the result into the destination (<see cref="BigQuerySource"/>).
/// A run request for it is a 422 when the org has no usable GCP integration or a back-quoted table parameter is not a
/// <c>project.dataset.table</c>.</para>
/// </remarks>
internal sealed partial class BigQueryEtlProcessor(ImportDirectory? imports = null, ILogger<BigQueryEtlProcessor>? logger = null, BigQuerySource? bigQuery = null)
    : IProcessor, IRunRequestValidator, IOrgRunRequestValidator
{
    public const string Type = "gcp.bq_etl";

    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    public string PsType => Type;

    public void ValidateRequest(StepDefinition step, IReadOnlyDictionary<string, string> parameters)
    {
        switch (SourceOf(step.Config))
        {
            case "file":
                Imports.Resolve(parameters.GetValueOrDefault(GcpBillingExportReader.Parameter), GcpBillingExportReader.Parameter);
                break;
            case BigQuerySource.SourceName:
                BigQuerySource.ValidateRequest(step, parameters);
                break;
        }
    }

    public Task ValidateOrgRequestAsync(StepDefinition step, OrgSlug org, CancellationToken cancellationToken) =>
        SourceOf(step.Config) == BigQuerySource.SourceName ? BigQuery.ValidateOrgRequestAsync(step, org, cancellationToken) : Task.CompletedTask;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var source = SourceOf(context.Config);
        var destination = context.RequireDestination();
        switch (source)
        {
            case "warehouse":
                var rows = await destination.WriteQueryAsync(context.Sql(), cancellationToken);
                return StepResult.Of(rows, ("source", source), ("table", destination.Schema.Name), ("write_mode", destination.Spec.Mode.ToConfigName()));
            case "file":
                return await LoadFileAsync(context, destination, cancellationToken);
            case BigQuerySource.SourceName:
                return await BigQuery.LoadAsync(context, destination, cancellationToken);
            default:
                throw new InvalidOperationException($"Step '{context.Step.StepId}': config.source '{source}' is not one of warehouse, file, bigquery.");
        }
    }

    private BigQuerySource BigQuery => bigQuery ?? throw new InvalidOperationException("No BigQuery client is configured; source: bigquery cannot run.");

    private ImportDirectory Imports => imports ?? throw new InvalidOperationException("No import folder is configured (CONVERGENCE_IMPORT_DIR); source: file cannot run.");

    private static string SourceOf(IReadOnlyDictionary<string, object?> config) =>
        config.TryGetValue("source", out var s) && s is string text ? text : "warehouse";

    private async Task<StepResult> LoadFileAsync(StepContext context, StepDestination destination, CancellationToken cancellationToken)
    {
        var sourceUri = context.Parameter(GcpBillingExportReader.Parameter);
        var path = Imports.Resolve(sourceUri, GcpBillingExportReader.Parameter);
        var format = context.Config.TryGetValue("format", out var f) ? f as string : null;
        var jsonLines = GcpBillingExportReader.IsJsonLines(path, format);
        var slice = context.Run.Slice;
        long read = 0, outside = 0;

        // Records by position (one array refilled per row), not a dictionary per row: the reader's columns are the
        // table's. The file is read and parsed on another thread, ahead of the write (RecordReadAhead).
        IEnumerable<object?[]> InSlice(CancellationToken token)
        {
            foreach (var record in GcpBillingExportReader.ReadRecords(path, sourceUri!, jsonLines, token))
            {
                read++;
                var day = (DateOnly)record[GcpBillingExportReader.UsageDate]!;
                if (day < slice.StartDate || day > slice.EndDate)
                {
                    outside++;
                    continue;
                }

                yield return record;
            }
        }

        var written = await destination.WriteRecordsAsync(GcpBillingExportReader.Columns, RecordReadAhead.Read(InSlice, cancellationToken), cancellationToken);
        if (read > 0 && written == 0)
        {
            throw RequestValidationException.For(
                GcpBillingExportReader.Parameter,
                $"none of the {read} rows of {sourceUri} has a usage day in {slice.StartDate:yyyy-MM-dd}..{slice.EndDate:yyyy-MM-dd}; pass start_date and end_date covering the export. Nothing was written.");
        }

        LogFileLoaded(_logger, context.Run.PipelineLoggingId, sourceUri!, read, written, outside);
        return StepResult.Of(
            written,
            ("source", "file"),
            ("source_uri", sourceUri),
            ("format", jsonLines ? "jsonl" : "csv"),
            ("rows_read", read),
            ("rows_outside_slice", outside),
            ("table", destination.Schema.Name),
            ("write_mode", destination.Spec.Mode.ToConfigName()));
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Run {PipelineLoggingId}: loaded {SourceUri}: {RowsRead} rows read, {RowsWritten} written, {RowsOutsideSlice} outside the run's slice")]
    private static partial void LogFileLoaded(ILogger logger, string pipelineLoggingId, string sourceUri, long rowsRead, long rowsWritten, long rowsOutsideSlice);
}
