using System.Text.Json;
using Convergence.Core.Pipelines;

namespace Convergence.Storage.Postgres;

/// <summary>The insert of a run row into <c>org_meta_pipeline_runs</c>, shared by the control-plane store and the run queue.</summary>
internal static class PostgresRuns
{
    /// <summary>Platform runs (bootstrap) have no org; their run-log rows carry this in the NOT NULL org_slug column.</summary>
    public const string NoOrg = "-";

    /// <summary>Inserts a run row from <see cref="Args"/>; a second run with the org's idempotency key violates a unique key.</summary>
    public const string InsertSql =
        """
        INSERT INTO org_meta_pipeline_runs (pipeline_logging_id, org_slug, pipeline_id, pipeline_path, "trigger", triggered_by, org_api_key_id,
            request_id, status, parameters, resolved_config, start_time, end_time, duration_ms, error_class, error_message,
            idempotency_key, worker_id, heartbeat_at, cancel_requested_at, attempt, created_at)
        VALUES (@PipelineLoggingId, @Org, @PipelineId, @PipelinePath, @Trigger, @TriggeredBy, @OrgApiKeyId,
            @RequestId, @Status, CAST(@Parameters AS jsonb), CAST(@ResolvedConfig AS jsonb), @StartTime, @EndTime, @DurationMs, @ErrorClass, @ErrorMessage,
            @IdempotencyKey, @WorkerId, @HeartbeatAt, NULL, @Attempt, @CreatedAt)
        """;

    public static object Args(PipelineRunRecord run) => new
    {
        run.PipelineLoggingId,
        Org = run.OrgSlug?.Value ?? NoOrg,
        run.PipelineId,
        run.PipelinePath,
        run.Trigger,
        run.TriggeredBy,
        run.OrgApiKeyId,
        run.RequestId,
        run.Status,
        Parameters = JsonSerializer.Serialize(run.Parameters),
        run.ResolvedConfig,
        StartTime = PostgresValues.Timestamp(run.StartTime),
        EndTime = PostgresValues.Timestamp(run.EndTime),
        run.DurationMs,
        run.ErrorClass,
        run.ErrorMessage,
        Attempt = (long)run.Attempt,
        CreatedAt = PostgresValues.Timestamp(run.CreatedAt),
        run.IdempotencyKey,
        run.WorkerId,
        HeartbeatAt = PostgresValues.Timestamp(run.HeartbeatAt),
    };
}
