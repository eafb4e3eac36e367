using Convergence.Core.Organizations;

namespace Convergence.Core.Pipelines;

/// <summary>States of runs and steps.</summary>
public static class RunStatus
{
    public const string Pending = "PENDING";
    public const string Running = "RUNNING";
    public const string Completed = "COMPLETED";
    public const string Failed = "FAILED";
    public const string Cancelled = "CANCELLED";
    public const string Skipped = "SKIPPED";
}

/// <summary>How a run was started.</summary>
public static class RunTrigger
{
    public const string Api = "API";
    public const string Scheduler = "SCHEDULER";
    public const string Admin = "ADMIN";
}

/// <summary>A row of <c>org_meta_pipeline_runs</c>.</summary>
public sealed record PipelineRunRecord(
    string PipelineLoggingId,
    OrgSlug? OrgSlug,
    string PipelineId,
    string PipelinePath,
    string Trigger,
    string? TriggeredBy,
    string? OrgApiKeyId,
    string? RequestId,
    string Status,
    IReadOnlyDictionary<string, string> Parameters,
    string? ResolvedConfig,
    DateTimeOffset? StartTime,
    DateTimeOffset? EndTime,
    string? ErrorClass,
    string? ErrorMessage,
    int Attempt,
    DateTimeOffset CreatedAt,
    string? IdempotencyKey = null,
    string? WorkerId = null,
    DateTimeOffset? HeartbeatAt = null,
    DateTimeOffset? CancelRequestedAt = null)
{
    public long? DurationMs => StartTime is { } s && EndTime is { } e ? (long)(e - s).TotalMilliseconds : null;

    public bool IsFinished => Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled;
}

/// <summary>A row of <c>org_meta_dq_results</c>.</summary>
public sealed record DqResultRecord(
    string DqResultId,
    string PipelineLoggingId,
    string? StepLoggingId,
    OrgSlug? OrgSlug,
    string TableName,
    string CheckName,
    string Severity,
    string Status,
    string? ObservedValue,
    string? Threshold,
    string? FailingSample,
    DateTimeOffset CreatedAt);

/// <summary>A filter and page of runs, newest first.</summary>
/// <param name="Org">The org whose runs to list; <c>null</c> lists every org's (root only).</param>
/// <param name="PageToken">Opaque token from the previous page's <see cref="RunPage.NextPageToken"/>.</param>
public sealed record RunQuery(OrgSlug? Org, string? Status, string? Pipeline, DateTimeOffset? Since, int Limit, string? PageToken);

/// <summary>A page of runs and the token of the next one (null on the last page).</summary>
public sealed record RunPage(IReadOnlyList<PipelineRunRecord> Runs, string? NextPageToken);

/// <summary>A row of <c>org_meta_step_logs</c>.</summary>
public sealed record StepLogRecord(
    string StepLoggingId,
    string PipelineLoggingId,
    OrgSlug? OrgSlug,
    string StepId,
    string PsType,
    string Status,
    DateTimeOffset? StartTime,
    DateTimeOffset? EndTime,
    long? RowsProcessed,
    int Attempt,
    IReadOnlyDictionary<string, object?>? Metadata,
    string? ErrorClass,
    string? ErrorMessage)
{
    public long? DurationMs => StartTime is { } s && EndTime is { } e ? (long)(e - s).TotalMilliseconds : null;
}
