using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;

namespace Convergence.Core.Storage;

/// <summary>
/// The <c>org_meta_pipeline_runs</c> row of a <see cref="PipelineRunRecord"/> as the stores write it: one column list, one
/// value order and one upsert rule, shared by the adapters so their inserts cannot drift apart.
/// </summary>
public static class RunRows
{
    /// <summary>Platform runs (bootstrap) have no org; their rows carry this in the NOT NULL org_slug column.</summary>
    public const string NoOrg = "-";

    /// <summary>The org of a row's <c>org_slug</c> column: none for a platform run's <see cref="NoOrg"/>.</summary>
    public static OrgSlug? OrgFromColumn(string value) => value == NoOrg ? null : OrgSlug.From(value);

    /// <summary>
    /// Appended to an insert of <see cref="Columns"/>, makes it an upsert fenced like the run itself: a finished run is
    /// final, and a stale attempt (an older lease's worker) never overwrites a newer one.
    /// </summary>
    public const string UpsertClause =
        """

        ON CONFLICT (pipeline_logging_id) DO UPDATE SET status = excluded.status, resolved_config = excluded.resolved_config,
            start_time = excluded.start_time, end_time = excluded.end_time, duration_ms = excluded.duration_ms,
            error_class = excluded.error_class, error_message = excluded.error_message, attempt = excluded.attempt,
            pipeline_id = excluded.pipeline_id, worker_id = excluded.worker_id, heartbeat_at = excluded.heartbeat_at
        WHERE org_meta_pipeline_runs.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED') AND org_meta_pipeline_runs.attempt <= excluded.attempt
        """;

    /// <summary>The columns a store writes, in the order of <see cref="Values"/> (cancel_requested_at starts NULL).</summary>
    public static IReadOnlyList<string> Columns { get; } =
    [
        "pipeline_logging_id", "org_slug", "pipeline_id", "pipeline_path", "trigger", "triggered_by", "org_api_key_id", "request_id", "status",
        "parameters", "resolved_config", "start_time", "end_time", "duration_ms", "error_class", "error_message", "attempt", "created_at",
        "idempotency_key", "worker_id", "heartbeat_at",
    ];

    /// <summary>The values of <paramref name="run"/>'s row in the order of <see cref="Columns"/>, timestamps as the adapter stores them.</summary>
    public static object?[] Values(PipelineRunRecord run, Func<DateTimeOffset?, object?> timestamp) =>
    [
        run.PipelineLoggingId,
        run.OrgSlug?.Value ?? NoOrg,
        run.PipelineId,
        run.PipelinePath,
        run.Trigger,
        run.TriggeredBy,
        run.OrgApiKeyId,
        run.RequestId,
        run.Status,
        JsonSerializer.Serialize(run.Parameters),
        run.ResolvedConfig,
        timestamp(run.StartTime),
        timestamp(run.EndTime),
        run.DurationMs,
        run.ErrorClass,
        run.ErrorMessage,
        (long)run.Attempt,
        timestamp(run.CreatedAt),
        run.IdempotencyKey,
        run.WorkerId,
        timestamp(run.HeartbeatAt),
    ];
}
