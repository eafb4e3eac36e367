using System.Globalization;
using Convergence.Core.Audit;
using Convergence.Core.Pipelines;
using Microsoft.Extensions.Logging;

namespace Convergence.Core.Scheduling;

/// <summary>
/// Turns due schedules into queued runs. Each due active schedule yields one tick per call: its run is queued (or
/// skipped with the reason, when the org is over quota or its subscription inactive) and its next_run_time advances to
/// the first occurrence after now.
/// </summary>
/// <remarks>
/// <para>Duplicate and concurrent triggers are harmless: a schedule advances only from the next_run_time the trigger
/// read (compare-and-swap), and a tick is recorded once per (org, pipeline, scheduled_for).</para>
/// <para>Catch-up policy: after downtime, a schedule that missed several occurrences runs once, for the latest
/// occurrence that is due (its <c>{date}</c> is that occurrence's local date); the earlier ones are counted on the
/// tick's record, not run. Backfill them with a date-range run if the data is needed.</para>
/// </remarks>
public sealed partial class ScheduleTrigger(
    IScheduleStore schedules,
    IRunQueueStore queue,
    PipelineExecutor executor,
    TimeProvider time,
    int maxAttempts,
    ILogger<ScheduleTrigger> logger)
{
    /// <summary>
    /// Schedules handled per store transaction. Larger batches write each hot index page (and checkpoint it) once per
    /// batch rather than once per 500 ticks: 30,000 ticks took 10 s in batches of 500, 5.8 s of 2,000 and 4.5 s of
    /// 5,000. A batch holds the embedded store's write lock for about 0.6 s, which API admissions wait out.
    /// </summary>
    public const int BatchSize = 5000;

    /// <summary>Ticks per store transaction; <see cref="BatchSize"/> unless set (tests use small batches to exercise the pipeline).</summary>
    public int TicksPerBatch { get; init; } = BatchSize;

    /// <summary>Missed occurrences a catch-up walks one by one before it jumps ahead.</summary>
    public const int MaxCatchUpWalk = 10_000;

    /// <summary>
    /// Due schedules read at once, then handled by org in batches of <see cref="BatchSize"/>: an org's ticks land in one
    /// batch, so its quota row is updated once rather than once per tick, and while one batch is written the next one's
    /// cron and validation work runs on another thread. (The next batch cannot be read while the current one is written:
    /// the read would not yet see the schedules the write advances.)
    /// </summary>
    public const int ReadSize = 10 * BatchSize;

    private int ReadLimit => 10 * TicksPerBatch;

    public async Task<TriggerResult> TriggerAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var outcomes = new List<TickOutcome>();
        int due = 0, invalid = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var crons = new System.Collections.Concurrent.ConcurrentDictionary<(string Cron, string Timezone), CronSchedule?>();
        while (true)
        {
            var read = (await schedules.ListDueAsync(now, ReadLimit, cancellationToken)).Where(c => seen.Add(c.ConfigId)).ToList();
            if (read.Count == 0)
            {
                break;
            }

            due += read.Count;
            await WriteBatchesAsync(read, now, crons, outcomes, n => invalid += n, cancellationToken);
        }

        var result = new TriggerResult(
            due,
            outcomes.Count(o => o.Status == TickStatus.Queued),
            outcomes.Count(o => o.Status == TickStatus.Skipped),
            outcomes.Count(o => o.Status == TickStatus.Duplicate),
            outcomes.Count(o => o.Status == TickStatus.Stale),
            invalid,
            outcomes);
        if (due > 0)
        {
            LogTriggered(logger, due, result.Queued, result.Skipped, result.Duplicates + result.Stale, invalid);
        }

        return result;
    }

    /// <summary>
    /// Writes the ticks of <paramref name="read"/> batch by batch, one transaction after the other, while the next batch's
    /// ticks are computed and prepared for the store (cron, validation, the store's rows) on another thread.
    /// </summary>
    private async Task WriteBatchesAsync(
        List<ScheduleConfig> read,
        DateTimeOffset now,
        System.Collections.Concurrent.ConcurrentDictionary<(string Cron, string Timezone), CronSchedule?> crons,
        List<TickOutcome> outcomes,
        Action<int> parked,
        CancellationToken cancellationToken)
    {
        // By org, and within an org by next run time (the order its ticks are counted against its quota).
        // The first batch is a fifth of the others: nothing overlaps its preparation, so the pipeline starts sooner.
        var ordered = read.OrderBy(c => c.OrgSlug.Value, StringComparer.Ordinal).ThenBy(c => c.NextRunTime).ThenBy(c => c.ConfigId, StringComparer.Ordinal).ToList();
        var first = Math.Min(ordered.Count, Math.Max(1, TicksPerBatch / 5));
        List<ScheduleConfig[]> batches = [ordered[..first].ToArray(), .. ordered.Skip(first).Chunk(TicksPerBatch)];
        Task<(TickBatch Batch, List<ScheduleConfig> Unusable)> Prepare(ScheduleConfig[] batch) => Task.Run(
            () =>
            {
                var (ticks, unusable) = Ticks(batch, now, crons);
                return (queue.PrepareTicks(ticks, now), unusable);
            },
            cancellationToken);

        var next = Prepare(batches[0]);
        for (var i = 0; i < batches.Count; i++)
        {
            var (batch, unusable) = await next;
            if (i + 1 < batches.Count)
            {
                next = Prepare(batches[i + 1]);
            }

            foreach (var config in unusable)
            {
                // Park it (no next run) so it neither blocks the due list nor fires; a PUT with valid values revives it.
                await schedules.UpdateAsync(config with { NextRunTime = null, UpdatedAt = now }, cancellationToken);
            }

            parked(unusable.Count);
            outcomes.AddRange(await queue.EnqueueTicksAsync(batch, cancellationToken));
        }
    }

    /// <summary>The ticks of a batch of due schedules, and the schedules that can no longer be used.</summary>
    private (List<ScheduledTick> Ticks, List<ScheduleConfig> Unusable) Ticks(
        ScheduleConfig[] batch, DateTimeOffset now, System.Collections.Concurrent.ConcurrentDictionary<(string Cron, string Timezone), CronSchedule?> crons)
    {
        var ticks = new List<ScheduledTick>(batch.Length);
        var unusable = new List<ScheduleConfig>();
        foreach (var config in batch)
        {
            if (Tick(config, now, crons) is { } tick)
            {
                ticks.Add(tick);
            }
            else
            {
                unusable.Add(config);
            }
        }

        return (ticks, unusable);
    }

    /// <summary>The tick of a due schedule, or null when its stored cron, pipeline or parameters can no longer be used.</summary>
    private ScheduledTick? Tick(
        ScheduleConfig config, DateTimeOffset now, System.Collections.Concurrent.ConcurrentDictionary<(string Cron, string Timezone), CronSchedule?> crons)
    {
        // Schedules share few distinct (cron, time zone) pairs: each is parsed once per trigger.
        var cron = crons.GetOrAdd((config.CronSchedule, config.Timezone), key => CronSchedule.TryCreate(key.Cron, key.Timezone, out var parsed, out _) ? parsed : null);
        if (config.NextRunTime is not { } expected || cron is null)
        {
            LogInvalid(logger, config.ConfigId, config.OrgSlug.Value, "its cron expression or time zone is invalid");
            return null;
        }

        try
        {
            var (occurrence, missed) = LatestDue(cron, expected, now);
            var parameters = new Dictionary<string, string>(config.Parameters, StringComparer.Ordinal)
            {
                [RunParameters.DateKey] = cron.ScheduledLocalDate(occurrence).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            };
            var actor = new Actor(Actor.RootType, null, config.OrgSlug, "scheduler", null);

            // Validated now (an unusable schedule is parked), prepared by the worker that claims the entry.
            executor.Validate(new PipelineRunRequest(config.Pipeline, config.OrgSlug, parameters, actor, RunTrigger.Scheduler));
            return new ScheduledTick(
                config.ConfigId, config.OrgSlug, config.Pipeline, expected, occurrence, cron.Next(now), missed, Guid.CreateVersion7(now).ToString(), parameters, maxAttempts);
        }
        catch (Exception ex) when (ex is Errors.ConvergenceException or CronScheduleException)
        {
            // The pipeline was removed or its parameters no longer validate.
            LogInvalid(logger, config.ConfigId, config.OrgSlug.Value, ex.Message);
            return null;
        }
    }

    /// <summary>
    /// The latest occurrence at or before <paramref name="now"/>, starting from the stored next_run_time, and how many
    /// earlier due occurrences it skips. Beyond <see cref="MaxCatchUpWalk"/> missed occurrences (an every-minute schedule
    /// down for a week) the walk jumps to the last day before now, so the count is then a lower bound.
    /// </summary>
    private static (DateTimeOffset Occurrence, int Missed) LatestDue(CronSchedule cron, DateTimeOffset expected, DateTimeOffset now)
    {
        var occurrence = expected;
        var missed = 0;
        for (var next = cron.Next(occurrence); next <= now; next = cron.Next(occurrence))
        {
            occurrence = next;
            missed++;
            if (missed == MaxCatchUpWalk && cron.Next(now - TimeSpan.FromDays(1)) is var near && near > occurrence && near <= now)
            {
                occurrence = near;
            }
        }

        return (occurrence, missed);
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Trigger: {Due} due schedule(s), {Queued} queued, {Skipped} skipped, {Repeated} already handled, {Invalid} invalid")]
    private static partial void LogTriggered(ILogger logger, int due, int queued, int skipped, int repeated, int invalid);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Schedule {ConfigId} of org {OrgSlug} cannot run: {Problem}")]
    private static partial void LogInvalid(ILogger logger, string configId, string orgSlug, string problem);
}

/// <summary>What one trigger did.</summary>
public sealed record TriggerResult(int Due, int Queued, int Skipped, int Duplicates, int Stale, int Invalid, IReadOnlyList<TickOutcome> Outcomes);
