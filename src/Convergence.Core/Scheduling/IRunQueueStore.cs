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

    /// <summary>
    /// Starts the run of a claimed entry: moves the entry to RUNNING and saves <paramref name="run"/> (as started) and its
    /// <paramref name="steps"/> as <see cref="Storage.IControlPlaneStore.SaveRunAsync(PipelineRunRecord, IReadOnlyList{StepLogRecord}, CancellationToken)"/>
    /// would, in one transaction; false, and nothing changed, when the lease was lost.
    /// </summary>
    Task<bool> StartAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Ends the run of a claimed entry: saves <paramref name="run"/> (finished) and its <paramref name="steps"/> as
    /// <see cref="Storage.IControlPlaneStore.SaveRunAsync(PipelineRunRecord, IReadOnlyList{StepLogRecord}, CancellationToken)"/>
    /// would and, in the same transaction, closes the entry with the run's status and error as
    /// <see cref="CompleteAsync"/> would; false when the lease was lost (the entry is left to its new owner; the rows are
    /// saved either way, under the run row's own fencing of attempts and finished runs).
    /// </summary>
    Task<bool> FinishAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Extends the leases still held; returns those that were lost (expired and taken over, or finished).</summary>
    Task<IReadOnlyList<QueueLease>> RenewAsync(IReadOnlyCollection<QueueLease> leases, DateTimeOffset expiresAt, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Finishes an entry with a final status; false (and nothing changed) when the lease was lost. Without an error the
    /// entry keeps its earlier <c>last_error</c> (a catch-up note, an earlier attempt's lost lease).
    /// </summary>
    Task<bool> CompleteAsync(QueueLease lease, string status, string? error, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Entries whose lease expired go back to QUEUED (their run row to PENDING with the next attempt number) while
    /// attempts remain, otherwise to FAILED with the reason (and their run row FAILED).
    /// </summary>
    Task<RescueOutcome> RescueExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Cancels the QUEUED entry of a run (a cancelled run that never started); false when none is queued.</summary>
    Task<bool> CancelQueuedAsync(string pipelineLoggingId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Records schedule ticks: per tick, advances the schedule (only if its next_run_time is still the expected one) and
    /// writes the tick's queue entry, once per (org, pipeline, scheduled_for) (the entry's idempotency key
    /// <c>schedule:{pipeline}:{scheduled_for}</c>): QUEUED and counted against the org's quota, or SKIPPED with the reason
    /// in <c>last_error</c>. The queue entry is the tick's only record: a queued tick's run row is created when a worker
    /// claims it (see <see cref="QueueLease.Deferred"/>); until then the control plane store shows the entry as a PENDING
    /// run under <see cref="ScheduledTick.RunId"/>.
    /// </summary>
    Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(TickBatch batch, CancellationToken cancellationToken);

    /// <summary>
    /// Makes a batch ready for <see cref="EnqueueTicksAsync(TickBatch, CancellationToken)"/>: CPU work only (a store may
    /// build its statement's rows here), so the trigger prepares the next batch while the current one is written.
    /// </summary>
    TickBatch PrepareTicks(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now) => new(ticks, now);

    /// <summary>Prepares and records a batch of ticks in one call.</summary>
    Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now, CancellationToken cancellationToken) =>
        EnqueueTicksAsync(PrepareTicks(ticks, now), cancellationToken);

    Task<QueueSnapshot> GetSnapshotAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Starts today's counters for every org (monthly counters carry over within the billing month) and purges quota
    /// rows, finished queue entries and schedule ticks older than <paramref name="purgeBefore"/>.
    /// </summary>
    Task<QuotaResetOutcome> ResetDailyQuotasAsync(DateTimeOffset now, DateOnly purgeBefore, CancellationToken cancellationToken);
}

/// <summary>One due tick of a schedule, with the run it produces (validated, not yet prepared).</summary>
/// <param name="ExpectedNextRunTime">The schedule's next_run_time when the tick was computed (the compare-and-swap value).</param>
/// <param name="ScheduledFor">The occurrence the run is for.</param>
/// <param name="NextRunTime">The schedule's next occurrence after now.</param>
/// <param name="MissedTicks">Earlier occurrences that were due but are not run (downtime catch-up runs once).</param>
/// <param name="RunId">The run's pipeline_logging_id, assigned now; a queued tick's entry also takes it as its queue_id.</param>
/// <param name="Parameters">The run's parameters (the schedule's, with <c>date</c> the occurrence's local date).</param>
/// <param name="MaxAttempts">How many times the run may be claimed before it fails for good.</param>
public sealed record ScheduledTick(
    string ConfigId,
    OrgSlug Org,
    string Pipeline,
    DateTimeOffset ExpectedNextRunTime,
    DateTimeOffset ScheduledFor,
    DateTimeOffset NextRunTime,
    int MissedTicks,
    string RunId,
    IReadOnlyDictionary<string, string> Parameters,
    int MaxAttempts)
{
    /// <summary>The queue entry's idempotency key: one entry per (org, pipeline, scheduled_for), however many triggers or schedules.</summary>
    public string QueueKey => ScheduleQueueKey(Pipeline, ScheduledFor);

    /// <summary>The note a catch-up tick's entry carries in <c>last_error</c>, or null.</summary>
    public string? CatchUpNote => MissedTicks > 0 ? $"Catch-up: {MissedTicks} earlier due tick(s) were not run." : null;

    public static string ScheduleQueueKey(string pipeline, DateTimeOffset scheduledFor) =>
        $"schedule:{pipeline}:{scheduledFor.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture)}";
}

/// <summary>Ticks made ready by <see cref="IRunQueueStore.PrepareTicks"/> (a store may subclass it with its prepared rows).</summary>
public class TickBatch(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now)
{
    public IReadOnlyList<ScheduledTick> Ticks => ticks;

    /// <summary>The trigger's time: when the ticks are recorded and counted.</summary>
    public DateTimeOffset Now => now;
}

/// <summary>What became of a tick.</summary>
public sealed record TickOutcome(string ConfigId, OrgSlug Org, string Pipeline, DateTimeOffset ScheduledFor, string Status, string? QueueId, string? Reason);

/// <summary>What became of ticks (QUEUED and SKIPPED are also the states of their queue entries).</summary>
public static class TickStatus
{
    public const string Queued = "QUEUED";

    /// <summary>Not run (over quota, subscription inactive): the entry is SKIPPED with the reason and no run.</summary>
    public const string Skipped = "SKIPPED";

    /// <summary>Another trigger already recorded this tick (no row written).</summary>
    public const string Duplicate = "DUPLICATE";

    /// <summary>The schedule changed or was advanced meanwhile (no row written).</summary>
    public const string Stale = "STALE";
}
