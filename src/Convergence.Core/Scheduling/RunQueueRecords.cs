using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;

namespace Convergence.Core.Scheduling;

/// <summary>States of <c>org_pipeline_execution_queue</c> entries.</summary>
public static class QueueStatus
{
    public const string Queued = "QUEUED";
    public const string Claimed = "CLAIMED";
    public const string Running = "RUNNING";
    public const string Completed = "COMPLETED";
    public const string Failed = "FAILED";
    public const string Cancelled = "CANCELLED";

    /// <summary>A scheduled tick that was not run (over quota, subscription inactive); <c>last_error</c> says why.</summary>
    public const string Skipped = "SKIPPED";
}

/// <summary>
/// Priorities of queue entries: the lowest number is claimed first, then the oldest (so the claim walks the
/// <c>(status, priority, created_at)</c> index in order and stops at the first claimable entry).
/// </summary>
public static class QueuePriority
{
    /// <summary>A run a caller asked for through the API, waiting for its answer.</summary>
    public const int Api = 0;

    /// <summary>A run produced by a schedule.</summary>
    public const int Scheduled = 10;
}

/// <summary>
/// A run to admit: the PENDING run row and how it is queued. When <see cref="CountsAgainstQuota"/>, admission checks the
/// org's subscription and its daily and monthly limits and counts the run, in the same transaction as the inserts.
/// </summary>
public sealed record RunAdmission(PipelineRunRecord Run, int Priority, int MaxAttempts, DateTimeOffset? ScheduledFor, bool CountsAgainstQuota, DateTimeOffset Now)
{
    public OrgSlug Org => Run.OrgSlug ?? throw new InvalidOperationException("Queued runs belong to an org.");
}

/// <summary>What admission decided.</summary>
public abstract record AdmissionOutcome
{
    private AdmissionOutcome()
    {
    }

    /// <summary>Stored: the run row is PENDING and its queue entry QUEUED.</summary>
    public sealed record Admitted(string QueueId, string PipelineLoggingId) : AdmissionOutcome;

    /// <summary>The org already used the run's idempotency key; nothing was stored or counted.</summary>
    public sealed record DuplicateKey : AdmissionOutcome;

    /// <summary>A run limit is reached; nothing was stored or counted.</summary>
    public sealed record OverQuota(QuotaLimit Limit) : AdmissionOutcome;

    /// <summary>The subscription may not run pipelines (not ACTIVE, trial over, none); nothing was stored.</summary>
    public sealed record SubscriptionInactive(string Reason) : AdmissionOutcome;
}

/// <summary>A reached run limit: which one, its value, what was used, and when it resets.</summary>
public sealed record QuotaLimit(string Name, int Limit, int Used, DateTimeOffset ResetsAt)
{
    public const string Daily = "daily";
    public const string Monthly = "monthly";

    public string Describe() => $"The {Name} limit of {Limit} runs is reached ({Used} used); it resets at {ResetsAt:yyyy-MM-dd'T'HH:mm:ss'Z'}.";
}

/// <summary>A claimed queue entry: the run it holds and the lease that fences every later change.</summary>
/// <param name="Deferred">For a scheduled entry, what its run row is created from when the claimer finds none.</param>
public sealed record QueueLease(
    string QueueId, OrgSlug Org, string PipelineLoggingId, string Owner, string Token, int Attempt, DateTimeOffset ExpiresAt, DeferredRun? Deferred = null)
{
    /// <summary>
    /// The run row as the claim left it (attempt and worker set), when the store read it in the claim's own round trip;
    /// null when it did not (the worker reads it).
    /// </summary>
    public PipelineRunRecord? Run { get; init; }
}

/// <summary>
/// The run of a scheduled queue entry, whose run row is created by the worker that claims it (the trigger writes only the
/// entry): its pipeline and parameters, and when the trigger queued it (the run's <c>created_at</c>, as listed before the
/// claim).
/// </summary>
public sealed record DeferredRun(string Pipeline, IReadOnlyDictionary<string, string> Parameters, DateTimeOffset ScheduledFor, DateTimeOffset QueuedAt);

/// <summary>What a sweep of expired leases did.</summary>
public sealed record RescueOutcome(int Requeued, int Failed);

/// <summary>The queue at a glance (<c>GET /api/v1/scheduler/status</c>).</summary>
public sealed record QueueSnapshot(
    int Queued,
    int Claimed,
    int Running,
    double? OldestQueuedAgeSeconds,
    IReadOnlyDictionary<string, int> RunningPerOrg,
    int FailedLastDay,
    int CompletedLastDay,
    int ExpiredLeases);

/// <summary>What a daily reset did.</summary>
public sealed record QuotaResetOutcome(DateOnly UsageDate, int OrgsReset, int QuotaRowsPurged, int QueueEntriesPurged, int ScheduledRunsPurged);
