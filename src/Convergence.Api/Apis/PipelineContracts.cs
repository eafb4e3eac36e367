using System.Text.Json;
using Convergence.Core.Pipelines;

namespace Convergence.Api.Apis;

public sealed record RunAcceptedResponse(string PipelineLoggingId, string PipelineId, string Pipeline, string OrgSlug, string Status, IReadOnlyDictionary<string, string> Parameters, DateTimeOffset CreatedAt, string StatusUrl);

public sealed record RunResponse(
    string PipelineLoggingId,
    string? OrgSlug,
    string PipelineId,
    string Pipeline,
    string Trigger,
    string Status,
    IReadOnlyDictionary<string, string> Parameters,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartTime,
    DateTimeOffset? EndTime,
    long? DurationMs,
    string? ErrorClass,
    string? ErrorMessage,
    string? TriggeredBy,
    bool CancelRequested,
    int Attempt,
    JsonElement? ResolvedConfig)
{
    /// <param name="includeConfig">Whether to include the resolved config (single-run reads).</param>
    public static RunResponse From(PipelineRunRecord r, bool includeConfig = false) => new(
        r.PipelineLoggingId, r.OrgSlug?.Value, r.PipelineId, r.PipelinePath, r.Trigger, r.Status, r.Parameters, r.CreatedAt, r.StartTime, r.EndTime, r.DurationMs,
        r.ErrorClass, r.ErrorMessage, r.TriggeredBy, r.CancelRequestedAt is not null, r.Attempt,
        includeConfig && r.ResolvedConfig is { } json ? JsonDocument.Parse(json).RootElement.Clone() : null);
}

public sealed record RunListResponse(IReadOnlyList<RunResponse> Runs, string? NextPageToken);

public sealed record StepResponse(
    string StepLoggingId, string StepId, string PsType, string Status, DateTimeOffset? StartTime, DateTimeOffset? EndTime, long? DurationMs,
    long? RowsProcessed, int Attempt, IReadOnlyDictionary<string, object?>? Metadata, string? ErrorClass, string? ErrorMessage)
{
    public static StepResponse From(StepLogRecord s) =>
        new(s.StepLoggingId, s.StepId, s.PsType, s.Status, s.StartTime, s.EndTime, s.DurationMs, s.RowsProcessed, s.Attempt, s.Metadata, s.ErrorClass, s.ErrorMessage);
}

public sealed record DqResultResponse(string DqResultId, string? StepLoggingId, string Table, string CheckName, string Severity, string Status, string? ObservedValue, string? Threshold, JsonElement? FailingSample, DateTimeOffset CreatedAt)
{
    public static DqResultResponse From(DqResultRecord d) => new(
        d.DqResultId, d.StepLoggingId, d.TableName, d.CheckName, d.Severity, d.Status, d.ObservedValue, d.Threshold,
        d.FailingSample is null ? null : JsonDocument.Parse(d.FailingSample).RootElement.Clone(), d.CreatedAt);
}

public sealed record RunStepsResponse(string PipelineLoggingId, string Status, IReadOnlyList<StepResponse> Steps, IReadOnlyList<DqResultResponse> DqResults);

public sealed record PipelineSummary(string Pipeline, string PipelineId, string? Description, string? Schedule, IReadOnlyList<string> Steps, IReadOnlyList<string> Parameters, int MaxDateRangeDays, string RunUrl);

public sealed record PipelineListResponse(string OrgSlug, IReadOnlyList<PipelineSummary> Pipelines);

public sealed record ValidationResponse(bool Valid, string Pipeline, string PipelineId, IReadOnlyList<string> Steps);

public sealed record ComprehensiveRun(RunResponse Run, IReadOnlyList<StepResponse> Steps, IReadOnlyList<DqResultResponse> DqResults);

public sealed record ComprehensiveViewResponse(string OrgSlug, IReadOnlyList<ComprehensiveRun> Runs, string? NextPageToken);
