using Convergence.Api.Auth;
using Convergence.Api.Configuration;
using Convergence.Api.Pipelines;
using Convergence.Core.Scheduling;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>
/// The scheduler endpoints an external cron calls (root key): trigger due schedules, process the queue, reset daily
/// quotas; and the queue's status. In the embedded default the process does the same on its own timer.
/// </summary>
public static class SchedulerApi
{
    public const int MaxProcessBatch = 100;

    public static IEndpointRouteBuilder MapSchedulerApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/scheduler").WithTags("Scheduler").RequireAuthorization(ConvergenceAuth.RootPolicy);
        group.MapPost("/trigger", Trigger)
            .WithSummary("Queue one run per due active schedule and advance each schedule; repeated or concurrent calls queue each tick once.");
        group.MapPost("/process-queue", ProcessQueue)
            .WithSummary("Re-queue or fail entries whose lease expired, then claim queued runs for this instance's free workers.");
        group.MapGet("/status", Status).WithSummary("Queue depth, oldest queued age, running per org, finished and failed in the last day.");
        group.MapPost("/reset-daily-quotas", ResetDailyQuotas)
            .WithSummary("Start today's run counters for every org and purge quota rows, finished queue entries and ticks past the retention window.");
        return app;
    }

    public static async Task<Ok<TriggerResponse>> Trigger(ScheduleTrigger trigger, RunQueueSignal signal, CancellationToken cancellationToken)
    {
        var result = await trigger.TriggerAsync(cancellationToken);
        if (result.Queued > 0)
        {
            signal.Notify();
        }

        return TypedResults.Ok(new TriggerResponse(
            result.Due, result.Queued, result.Skipped, result.Duplicates, result.Stale, result.Invalid,
            [.. result.Outcomes.Where(o => o.Status != TickStatus.Queued).Take(100).Select(o => new TickResponse(o.ConfigId, o.Org.Value, o.Pipeline, o.ScheduledFor, o.Status, o.Reason))]));
    }

    public static async Task<Ok<ProcessQueueResponse>> ProcessQueue(
        IRunQueueStore queue, RunDispatcher dispatcher, TimeProvider time, CancellationToken cancellationToken, int? limit = null)
    {
        var max = Math.Clamp(limit ?? MaxProcessBatch, 1, MaxProcessBatch);
        var rescued = await queue.RescueExpiredAsync(time.GetUtcNow(), cancellationToken);
        var claimed = await dispatcher.DispatchAsync(max, cancellationToken);
        return TypedResults.Ok(new ProcessQueueResponse(
            rescued.Requeued, rescued.Failed, [.. claimed.Select(c => new ClaimedEntry(c.QueueId, c.PipelineLoggingId, c.Org.Value, c.Attempt))], dispatcher.FreeSlots));
    }

    public static async Task<Ok<SchedulerStatusResponse>> Status(
        IRunQueueStore queue, RunDispatcher dispatcher, HeldLeases held, ConvergenceSettings settings, TimeProvider time, CancellationToken cancellationToken)
    {
        var snapshot = await queue.GetSnapshotAsync(time.GetUtcNow(), cancellationToken);
        return TypedResults.Ok(new SchedulerStatusResponse(
            snapshot.Queued, snapshot.Claimed, snapshot.Running, snapshot.OldestQueuedAgeSeconds, snapshot.RunningPerOrg,
            snapshot.CompletedLastDay, snapshot.FailedLastDay, snapshot.ExpiredLeases,
            new InstanceStatus(settings.Scheduler, settings.PipelineWorkers, dispatcher.FreeSlots, held.Count)));
    }

    public static async Task<Ok<QuotaResetResponse>> ResetDailyQuotas(
        IRunQueueStore queue, ConvergenceSettings settings, TimeProvider time, CancellationToken cancellationToken, [FromQuery(Name = "retention_days")] int? retentionDays = null)
    {
        var days = retentionDays ?? settings.QuotaRetentionDays;
        if (days < 35)
        {
            throw Core.Errors.RequestValidationException.For("retention_days", "must be at least 35, so the current billing month's daily counts are kept.");
        }

        var now = time.GetUtcNow();
        var result = await queue.ResetDailyQuotasAsync(now, QuotaCalendar.UsageDate(now).AddDays(-days), cancellationToken);
        return TypedResults.Ok(new QuotaResetResponse(result.UsageDate, result.OrgsReset, days, result.QuotaRowsPurged, result.QueueEntriesPurged, result.ScheduledRunsPurged));
    }
}

public sealed record TriggerResponse(int Due, int Queued, int Skipped, int Duplicates, int Stale, int Invalid, IReadOnlyList<TickResponse> NotQueued);

public sealed record TickResponse(string ConfigId, string OrgSlug, string Pipeline, DateTimeOffset ScheduledFor, string Status, string? Reason);

public sealed record ProcessQueueResponse(int Requeued, int Failed, IReadOnlyList<ClaimedEntry> Claimed, int FreeWorkers);

public sealed record ClaimedEntry(string QueueId, string PipelineLoggingId, string OrgSlug, int Attempt);

public sealed record SchedulerStatusResponse(
    int Queued,
    int Claimed,
    int Running,
    double? OldestQueuedAgeSeconds,
    IReadOnlyDictionary<string, int> RunningPerOrg,
    int CompletedLastDay,
    int FailedLastDay,
    int ExpiredLeases,
    InstanceStatus Instance);

public sealed record InstanceStatus(string Scheduler, int Workers, int FreeWorkers, int HeldLeases);

public sealed record QuotaResetResponse(DateOnly UsageDate, int OrgsReset, int RetentionDays, int QuotaRowsPurged, int QueueEntriesPurged, int ScheduledRunsPurged);
