using System.Globalization;
using System.Text;
using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Dapper;

namespace Convergence.Storage.Postgres;

/// <summary>
/// The writes of run rows (<c>org_meta_pipeline_runs</c>) and step rows (<c>org_meta_step_logs</c>), shared by the
/// control-plane store and the run queue.
/// </summary>
internal static class PostgresRuns
{
    private static readonly string RunColumns = string.Join(", ", RunRows.Columns.Select(c => "\"" + c + "\""));

    private static readonly string RunValues =
        string.Join(", ", RunRows.Columns.Select(c => c is "parameters" or "resolved_config" ? $"CAST(@{c} AS jsonb)" : "@" + c));

    /// <summary>Inserts a run row from <see cref="Args"/>; a second run with the org's idempotency key violates a unique key.</summary>
    public static readonly string InsertSql = $"INSERT INTO org_meta_pipeline_runs ({RunColumns}) VALUES ({RunValues})";

    /// <summary>
    /// Upserts a run row. Fencing: a finished run is final, and a stale attempt (an older lease's worker) never overwrites a newer one.
    /// </summary>
    public static readonly string SaveSql = InsertSql + RunRows.UpsertClause;

    /// <summary>The step row's columns and their parameter names, in the order of <see cref="AddStepArgs"/>.</summary>
    private static readonly (string Column, string Parameter)[] StepFields =
    [
        ("step_logging_id", "StepLoggingId"), ("pipeline_logging_id", "PipelineLoggingId"), ("org_slug", "Org"), ("step_id", "StepId"),
        ("ps_type", "PsType"), ("status", "Status"), ("start_time", "StartTime"), ("end_time", "EndTime"), ("duration_ms", "DurationMs"),
        ("rows_processed", "RowsProcessed"), ("attempt", "Attempt"), ("metadata", "Metadata"), ("error_class", "ErrorClass"), ("error_message", "ErrorMessage"),
    ];

    private static readonly string StepColumns = string.Join(", ", StepFields.Select(f => f.Column));

    private const string StepUpsertClause =
        """

        ON CONFLICT (step_logging_id) DO UPDATE SET status = excluded.status, start_time = excluded.start_time, end_time = excluded.end_time,
            duration_ms = excluded.duration_ms, rows_processed = excluded.rows_processed, attempt = excluded.attempt,
            metadata = excluded.metadata, error_class = excluded.error_class, error_message = excluded.error_message
        """;

    /// <summary>Upserts a step row from <see cref="StepArgs"/>.</summary>
    public static readonly string SaveStepSql = StepSql(string.Empty, "VALUES (", ")");

    /// <summary>The parameters of <see cref="InsertSql"/> and <see cref="SaveSql"/> for <paramref name="run"/>.</summary>
    public static DynamicParameters Args(PipelineRunRecord run)
    {
        var args = new DynamicParameters();
        foreach (var (column, value) in RunRows.Columns.Zip(RunRows.Values(run, t => PostgresValues.Timestamp(t))))
        {
            args.Add(column, value);
        }

        return args;
    }

    /// <summary>The parameters of <see cref="SaveStepSql"/> for <paramref name="step"/>.</summary>
    public static DynamicParameters StepArgs(StepLogRecord step)
    {
        var args = new DynamicParameters();
        AddStepArgs(args, step, string.Empty);
        return args;
    }

    /// <summary>
    /// One batch that upserts <paramref name="run"/> and then each of <paramref name="steps"/> (each step with its own
    /// parameter names: <c>@Status_0</c>, <c>@Status_1</c>, ...), for one round trip in one implicit transaction.
    /// </summary>
    public static CommandDefinition SaveBatch(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken)
    {
        var (sql, args) = SaveStatements(run, steps);
        return new CommandDefinition(sql, args, cancellationToken: cancellationToken);
    }

    /// <summary>The statements and parameters of <see cref="SaveBatch"/>, for a batch that sends more with them.</summary>
    public static (string Sql, DynamicParameters Args) SaveStatements(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps)
    {
        var sql = new StringBuilder(SaveSql);
        var args = Args(run);
        for (var i = 0; i < steps.Count; i++)
        {
            var suffix = Suffix(i);
            sql.Append(";\n").Append(StepSql(suffix, "VALUES (", ")"));
            AddStepArgs(args, steps[i], suffix);
        }

        return (sql.ToString(), args);
    }

    /// <summary>
    /// One statement that runs <paramref name="fence"/> (a data-modifying statement returning a row when the write may
    /// happen) and upserts <paramref name="run"/> and its <paramref name="steps"/> only if it returned one, all on one
    /// snapshot in one implicit transaction; the statement returns how many rows the fence returned. The fence's
    /// parameters are added to <paramref name="fenceArgs"/>'s names, which must not clash with the rows' own.
    /// </summary>
    public static CommandDefinition FencedSave(
        string fence, object fenceArgs, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken)
    {
        var sql = new StringBuilder("WITH fence AS (").Append(fence).Append("),\n")
            .Append("run_row AS (INSERT INTO org_meta_pipeline_runs (").Append(RunColumns).Append(") SELECT ").Append(RunValues).Append(" FROM fence")
            .Append(RunRows.UpsertClause).Append(')');
        var args = Args(run);
        args.AddDynamicParams(fenceArgs);
        for (var i = 0; i < steps.Count; i++)
        {
            var suffix = Suffix(i);
            sql.Append(",\nstep_row").Append(suffix).Append(" AS (").Append(StepSql(suffix, "SELECT ", " FROM fence")).Append(')');
            AddStepArgs(args, steps[i], suffix);
        }

        sql.Append("\nSELECT COUNT(*) FROM fence");
        return new CommandDefinition(sql.ToString(), args, cancellationToken: cancellationToken);
    }

    private static string Suffix(int index) => "_" + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>The upsert of one step row whose parameter names end in <paramref name="suffix"/>, its values between <paramref name="open"/> and <paramref name="close"/>.</summary>
    private static string StepSql(string suffix, string open, string close)
    {
        var values = string.Join(", ", StepFields.Select(f => f.Column == "metadata" ? $"CAST(@{f.Parameter}{suffix} AS jsonb)" : $"@{f.Parameter}{suffix}"));
        return $"INSERT INTO org_meta_step_logs ({StepColumns}) {open}{values}{close}{StepUpsertClause}";
    }

    private static void AddStepArgs(DynamicParameters args, StepLogRecord step, string suffix)
    {
        args.Add("StepLoggingId" + suffix, step.StepLoggingId);
        args.Add("PipelineLoggingId" + suffix, step.PipelineLoggingId);
        args.Add("Org" + suffix, step.OrgSlug?.Value ?? RunRows.NoOrg);
        args.Add("StepId" + suffix, step.StepId);
        args.Add("PsType" + suffix, step.PsType);
        args.Add("Status" + suffix, step.Status);
        args.Add("StartTime" + suffix, PostgresValues.Timestamp(step.StartTime));
        args.Add("EndTime" + suffix, PostgresValues.Timestamp(step.EndTime));
        args.Add("DurationMs" + suffix, step.DurationMs);
        args.Add("RowsProcessed" + suffix, step.RowsProcessed);
        args.Add("Attempt" + suffix, (long)step.Attempt);
        args.Add("Metadata" + suffix, step.Metadata is null ? null : JsonSerializer.Serialize(step.Metadata));
        args.Add("ErrorClass" + suffix, step.ErrorClass);
        args.Add("ErrorMessage" + suffix, step.ErrorMessage);
    }
}
