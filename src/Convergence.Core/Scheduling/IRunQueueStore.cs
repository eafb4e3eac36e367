using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;

namespace Convergence.Core.Scheduling;

/// <summary>
/// The durable run queue (<c>org_pipeline_execution_queue</c>) with quota admission, leases and schedule ticks.
/// </summary>
/// <remarks>
/// <para>Every method is one transaction of the store: admission checks and counts quotas and inserts the run and
/// its entry together; a claim checks the org's concurrent limit and takes the lease together. Correctness never
/// depends on locks inside one process, so several instances may share the store.</para>
/// <para>Changes to a claimed entry are fenced by its lease token: a worker whose lease expired (and whose entry was
/// re-queued or claimed by another worker) changes nothing.</para>
/// </remarks>
public interface IRunQueueStore
{
    /// <summary>Admits one run: subscription and quota checks, counters, the PENDING run row and the QUEUED entry.</summary>
    Task<AdmissionOutcome> AdmitAsync(RunAdmission admission, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the next entry (priority, then age) whose org is below its concurrent limit, leasing it to
    /// <paramref name="owner"/> until <paramref name="now"/> + <paramref name="lease"/>; null when none is claimable.
    /// </summary>
    Task<QueueLease?> ClaimAsync(string owner, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Moves a claimed entry to RUNNING; false when the lease was lost.</summary>
    Task<bool> MarkRunningAsync(QueueLease lease, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Extends the leases still held; returns those that were lost (expired and taken over, or finished).</summary>
    Task<IReadOnlyList<QueueLease>> RenewAsync(IReadOnlyCollection<QueueLease> leases, DateTimeOffset expiresAt, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Finishes an entry with a final status; false (and nothing changed) when the lease was lost.</summary>
    Task<bool> CompleteAsync(QueueLease lease, string status, string? error, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Entries whose lease expired go back to QUEUED (their run row to PENDING with the next attempt number) while
    /// attempts remain, otherwise to FAILED with the reason (and their run row FAILED).
    /// </summary>
    Task<RescueOutcome> RescueExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Cancels the QUEUED entry of a run (a cancelled run that never started); false when none is queued.</summary>
    Task<bool> CancelQueuedAsync(string pipelineLoggingId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Records schedule ticks: per tick, advances the schedule (only if its next_run_time is still the expected one),
    /// records the tick once per (org, pipeline, scheduled_for) and admits its run, or records why it was skipped.
    /// </summary>
    Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now, CancellationToken cancellationToken);

    Task<QueueSnapshot> GetSnapshotAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Starts today's counters for every org (monthly counters carry over within the billing month) and purges quota
    /// rows, finished queue entries and schedule ticks older than <paramref name="purgeBefore"/>.
    /// </summary>
    Task<QuotaResetOutcome> ResetDailyQuotasAsync(DateTimeOffset now, DateOnly purgeBefore, CancellationToken cancellationToken);
}

/// <summary>One due tick of a schedule, with the run it produces.</summary>
/// <param name="ExpectedNextRunTime">The schedule's next_run_time when the tick was computed (the compare-and-swap value).</param>
/// <param name="ScheduledFor">The occurrence the run is for.</param>
/// <param name="NextRunTime">The schedule's next occurrence after now.</param>
/// <param name="MissedTicks">Earlier occurrences that were due but are not run (downtime catch-up runs once).</param>
/// <param name="MaxAttempts">How many times the run may be claimed before it fails for good.</param>
public sealed record ScheduledTick(
    string ConfigId,
    OrgSlug Org,
    string Pipeline,
    DateTimeOffset ExpectedNextRunTime,
    DateTimeOffset ScheduledFor,
    DateTimeOffset NextRunTime,
    int MissedTicks,
    PipelineRunRecord Run,
    int MaxAttempts);

/// <summary>What became of a tick.</summary>
public sealed record TickOutcome(string ConfigId, OrgSlug Org, string Pipeline, DateTimeOffset ScheduledFor, string Status, string? QueueId, string? Reason);

/// <summary>States of <c>org_scheduled_pipeline_runs</c> rows (and of ticks that wrote none).</summary>
public static class TickStatus
{
    public const string Queued = "QUEUED";
    public const string Skipped = "SKIPPED";

    /// <summary>Another trigger already recorded this tick (no row written).</summary>
    public const string Duplicate = "DUPLICATE";

    /// <summary>The schedule changed or was advanced meanwhile (no row written).</summary>
    public const string Stale = "STALE";
}
