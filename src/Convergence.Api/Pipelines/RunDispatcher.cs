using System.Collections.Concurrent;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;

namespace Convergence.Api.Pipelines;

/// <summary>The queue entries this instance holds, with their leases (renewed by <see cref="RunMaintenanceService"/>).</summary>
public sealed class HeldLeases
{
    private readonly ConcurrentDictionary<string, QueueLease> _leases = new(StringComparer.Ordinal);

    public int Count => _leases.Count;

    public IReadOnlyCollection<QueueLease> Snapshot() => [.. _leases.Values];

    internal void Add(QueueLease lease) => _leases[lease.QueueId] = lease;

    internal void Remove(QueueLease lease) => _leases.TryRemove(new KeyValuePair<string, QueueLease>(lease.QueueId, lease));

    internal void Renewed(QueueLease lease, DateTimeOffset expiresAt) => _leases.TryUpdate(lease.QueueId, lease with { ExpiresAt = expiresAt }, lease);
}

/// <summary>
/// Claims queue entries while this instance has free worker slots and executes their runs. Each entry is claimed with a
/// lease in the store (priority, then age, within the org's concurrent limit); the entry is closed with the run's final
/// status under that lease, so a worker that lost its lease changes nothing.
/// </summary>
public sealed partial class RunDispatcher(
    IRunQueueStore queue,
    IControlPlaneStore store,
    PipelineExecutor executor,
    WorkerIdentity worker,
    HeldLeases held,
    RunQueueSignal signal,
    TimeProvider time,
    ConvergenceWorkerOptions options,
    ILogger<RunDispatcher> logger)
{
    private readonly SemaphoreSlim _slots = new(options.Workers, options.Workers);
    private readonly ConcurrentDictionary<Task, byte> _running = new();
    private CancellationToken _stopping = CancellationToken.None;

    /// <summary>Worker slots free now.</summary>
    public int FreeSlots => _slots.CurrentCount;

    /// <summary>Claims up to <paramref name="max"/> entries (bounded by free slots) and starts their runs; returns the leases taken.</summary>
    public async Task<IReadOnlyList<QueueLease>> DispatchAsync(int max, CancellationToken cancellationToken)
    {
        var claimed = new List<QueueLease>();
        while (claimed.Count < max && !_stopping.IsCancellationRequested && await _slots.WaitAsync(0, cancellationToken))
        {
            QueueLease? lease;
            try
            {
                lease = await queue.ClaimAsync(worker.Id, time.GetUtcNow(), options.LeaseDuration, cancellationToken);
            }
            catch
            {
                _slots.Release();
                throw;
            }

            if (lease is null)
            {
                _slots.Release();
                break;
            }

            held.Add(lease);
            claimed.Add(lease);
            var task = Task.Run(() => RunSlotAsync(lease), CancellationToken.None);
            _running.TryAdd(task, 0);
            _ = task.ContinueWith(t => _running.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return claimed;
    }

    /// <summary>The dispatch loop: claim what fits, then sleep until woken or the poll interval passes.</summary>
    internal async Task LoopAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        while (!stoppingToken.IsCancellationRequested)
        {
            var wake = signal.Next;
            try
            {
                await DispatchAsync(int.MaxValue, stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                LogDispatchFailed(logger, ex.Message);
            }

            try
            {
                // The poll is liveness, not business time: it runs on the real clock so a test's manual clock only ever
                // holds the timers of the runs themselves.
                await Task.WhenAny(wake, Task.Delay(options.PollInterval, stoppingToken));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }

        // Let runs that are executing see the stop and record themselves.
        await Task.WhenAll(_running.Keys);
    }

    /// <summary>
    /// Runs <paramref name="lease"/>, then keeps the slot claiming and running entries until the queue has nothing it may
    /// take: a busy pool claims in parallel, one claim per slot, instead of every claim waiting its turn in the dispatch loop
    /// (which bounded an instance to one claim round trip at a time however many slots it had).
    /// </summary>
    private async Task RunSlotAsync(QueueLease lease)
    {
        QueueLease? next = lease;
        try
        {
            while (next is not null)
            {
                await RunLeaseAsync(next);
                next = _stopping.IsCancellationRequested ? null : await queue.ClaimAsync(worker.Id, time.GetUtcNow(), options.LeaseDuration, _stopping);
                if (next is not null)
                {
                    held.Add(next);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // The host is stopping: the claim was rolled back.
        }
        catch (Exception ex)
        {
            LogDispatchFailed(logger, ex.Message);
        }
        finally
        {
            // The slot is free (and the queue may hold work other slots can take, or a run ending freed an org's slot).
            _slots.Release();
            signal.Notify();
        }
    }

    private async Task RunLeaseAsync(QueueLease lease)
    {
        var status = RunStatus.Failed;
        string? error = null;
        try
        {
            PipelineRunRecord? run = null;
            if (lease.Deferred is { } deferred)
            {
                // A scheduled entry: its run row is created by its first claim (a later attempt finds it).
                (run, error) = await CreateDeferredRunAsync(lease, deferred);
                if (error is not null)
                {
                    return;
                }
            }

            run ??= lease.Run ?? await store.FindRunAsync(lease.PipelineLoggingId, lease.Org, _stopping);
            if (run is null || run.IsFinished)
            {
                status = run?.Status ?? RunStatus.Failed;
                error = run is null ? "The run row is missing." : null;
                return;
            }

            run = run with { Attempt = lease.Attempt };
            if (run.CancelRequestedAt is not null)
            {
                await store.SaveRunAsync(run with { Status = RunStatus.Cancelled, EndTime = time.GetUtcNow(), ErrorClass = "Cancelled", ErrorMessage = "Cancelled before it started." }, _stopping);
                status = RunStatus.Cancelled;
                return;
            }

            var actor = new Actor(run.OrgApiKeyId is null ? Actor.RootType : Actor.OrgKeyType, run.OrgApiKeyId, run.OrgSlug, run.TriggeredBy, run.RequestId);
            try
            {
                // The executor closes the entry with the run's end (or finds the lease lost); if it could not record the end,
                // the entry is closed below with the run's status.
                var outcome = await executor.ExecuteQueuedAsync(run, actor, lease, _stopping);
                if (outcome.Failure is { } failure)
                {
                    LogRunEnded(logger, run.PipelineLoggingId, failure.GetType().Name);
                }

                if (outcome.EntryClosed is { } closed)
                {
                    if (!closed)
                    {
                        LogLeaseLost(logger, lease.QueueId, lease.PipelineLoggingId);
                    }

                    status = string.Empty;
                    return;
                }

                status = outcome.Status;
                error = outcome.Error;
                return;
            }
            catch (LeaseLostException)
            {
                status = string.Empty; // lost before it started: the new owner runs it
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !_stopping.IsCancellationRequested)
            {
                LogRunEnded(logger, run.PipelineLoggingId, ex.GetType().Name);
                var final = await store.FindRunAsync(lease.PipelineLoggingId, lease.Org, CancellationToken.None);
                if (final is { IsFinished: false } && final.Attempt == lease.Attempt)
                {
                    // It failed before its start was recorded (such as a pipeline this instance's configs lack, admitted
                    // by an instance that has it): the run ends FAILED with the reason, not PENDING for ever. (A row of a
                    // later attempt belongs to the entry's new owner.)
                    final = final with { Status = RunStatus.Failed, EndTime = time.GetUtcNow(), ErrorClass = ex.GetType().Name, ErrorMessage = ex.Message };
                    await store.SaveRunAsync(final, CancellationToken.None);
                }

                status = final is { IsFinished: true } ? final.Status : RunStatus.Failed;
                error = final?.ErrorMessage ?? ex.Message;
            }
        }
        catch (Exception ex)
        {
            error = ex.Message;
            LogRunEnded(logger, lease.PipelineLoggingId, ex.GetType().Name);
        }
        finally
        {
            try
            {
                if (status.Length > 0 && !await queue.CompleteAsync(lease, status, error, time.GetUtcNow(), CancellationToken.None))
                {
                    LogLeaseLost(logger, lease.QueueId, lease.PipelineLoggingId);
                }
            }
            catch (Exception ex)
            {
                // The lease expires and the rescuer closes the entry from the run's final status.
                LogDispatchFailed(logger, ex.Message);
            }

            held.Remove(lease);
        }
    }

    /// <summary>
    /// Prepares and stores the run row of a scheduled entry (the pipeline's config as it is now, the run id the trigger
    /// assigned): the run, or null when an earlier attempt already created it; or the error when it cannot be prepared
    /// (the pipeline was removed or its parameters no longer validate), which fails the entry.
    /// </summary>
    private async Task<(PipelineRunRecord? Run, string? Error)> CreateDeferredRunAsync(QueueLease lease, DeferredRun deferred)
    {
        PipelineRunRecord run;
        try
        {
            var actor = new Actor(Actor.RootType, null, lease.Org, "scheduler", null);
            run = executor.Prepare(new PipelineRunRequest(deferred.Pipeline, lease.Org, deferred.Parameters, actor, RunTrigger.Scheduler), null, lease.PipelineLoggingId)
                with { Attempt = lease.Attempt, CreatedAt = deferred.QueuedAt };
        }
        catch (ConvergenceException ex)
        {
            return (null, $"The scheduled run could not be prepared: {ex.Message}");
        }

        try
        {
            await store.CreateRunAsync(run, _stopping);
            return (run, null);
        }
        catch (DuplicateRowException)
        {
            return (null, null);
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Worker finished run {PipelineLoggingId} with {ErrorClass}")]
    private static partial void LogRunEnded(ILogger logger, string pipelineLoggingId, string errorClass);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Queue entry {QueueId} (run {PipelineLoggingId}) was taken over after its lease expired; this worker's result was not recorded")]
    private static partial void LogLeaseLost(ILogger logger, string queueId, string pipelineLoggingId);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Error, Message = "Claiming from the run queue failed: {Problem}")]
    private static partial void LogDispatchFailed(ILogger logger, string problem);
}

/// <summary>Runs the dispatch loop of this instance's worker pool.</summary>
internal sealed partial class PipelineWorkerService(
    RunDispatcher dispatcher, IControlPlaneStore store, RunQueueSignal signal, ConvergenceWorkerOptions options, ILogger<PipelineWorkerService> logger) : BackgroundService
{
    private async Task<bool> IsBootstrappedAsync(CancellationToken stoppingToken)
    {
        try
        {
            return await store.IsBootstrappedAsync(stoppingToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogStoreUnavailable(logger, ex.Message);
            return false;
        }
    }

    [LoggerMessage(EventId = 3008, Level = LogLevel.Warning, Message = "The control-plane store is not reachable yet; the worker pool waits: {Problem}")]
    private static partial void LogStoreUnavailable(ILogger logger, string problem);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Before bootstrap there is no queue table: wait for it (bootstrap notifies, or the poll finds it). A store that
        // is not reachable yet (a database still starting) is waited for the same way instead of stopping the host.
        while (!await IsBootstrappedAsync(stoppingToken))
        {
            var wake = signal.Next;
            await Task.WhenAny(wake, Task.Delay(options.PollInterval, stoppingToken));
            stoppingToken.ThrowIfCancellationRequested();
        }

        await dispatcher.LoopAsync(stoppingToken);
    }
}

/// <summary>Sizes and timings of the in-process worker pool.</summary>
/// <param name="Workers">Runs executed at once by this instance.</param>
/// <param name="HeartbeatInterval">How often run heartbeats and leases are renewed.</param>
/// <param name="MaxAttempts">How often an entry may be claimed before a lost lease fails it for good.</param>
/// <param name="PollInterval">How often an idle dispatcher looks for work other instances queued.</param>
public sealed record ConvergenceWorkerOptions(int Workers, TimeSpan HeartbeatInterval, int MaxAttempts, TimeSpan PollInterval)
{
    /// <summary>A run whose heartbeat is older than this is abandoned (its worker died).</summary>
    public TimeSpan StaleAfter => HeartbeatInterval * 4;

    /// <summary>How long a claim holds its entry without renewal.</summary>
    public TimeSpan LeaseDuration => StaleAfter;
}

/// <summary>
/// Keeps runs honest: renews this worker's leases and run heartbeats (a run whose lease was taken over is cancelled
/// here), forwards cancellation requested elsewhere, re-queues or fails entries whose lease expired, and fails runs
/// outside the queue whose worker stopped heartbeating, so no run stays RUNNING forever.
/// </summary>
internal sealed partial class RunMaintenanceService(
    IControlPlaneStore store,
    IRunQueueStore queue,
    HeldLeases held,
    RunQueueSignal signal,
    WorkerIdentity worker,
    RunCancellationRegistry cancellations,
    ConvergenceWorkerOptions options,
    TimeProvider time,
    ILogger<RunMaintenanceService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.HeartbeatInterval, time);
        do
        {
            try
            {
                await TickAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogTickFailed(logger, ex.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    internal async Task TickAsync(CancellationToken cancellationToken)
    {
        if (!await store.IsBootstrappedAsync(cancellationToken))
        {
            return;
        }

        var now = time.GetUtcNow();
        var expiresAt = now + options.LeaseDuration;
        var leases = held.Snapshot();
        foreach (var lost in await queue.RenewAsync(leases, expiresAt, now, cancellationToken))
        {
            // Another worker owns the entry now (or it was failed): stop this copy of the run.
            LogLeaseLost(logger, lost.QueueId, lost.PipelineLoggingId);
            cancellations.TryCancel(lost.PipelineLoggingId);
        }

        foreach (var lease in leases)
        {
            held.Renewed(lease, expiresAt);
        }

        foreach (var runId in await store.HeartbeatAsync(worker.Id, now, cancellationToken))
        {
            cancellations.TryCancel(runId);
        }

        var rescued = await queue.RescueExpiredAsync(now, cancellationToken);
        if (rescued.Requeued + rescued.Failed > 0)
        {
            LogRescued(logger, rescued.Requeued, rescued.Failed);
            signal.Notify();
        }

        var failed = await store.FailAbandonedRunsAsync(
            now - options.StaleAfter, now, $"Abandoned: its worker stopped reporting for over {options.StaleAfter.TotalSeconds:0} s (crash or restart).", cancellationToken);
        if (failed > 0)
        {
            LogAbandoned(logger, failed);
        }
    }

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Failed {Count} abandoned run(s) whose worker stopped heartbeating")]
    private static partial void LogAbandoned(ILogger logger, int count);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Run maintenance failed: {Problem}")]
    private static partial void LogTickFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "Lease of queue entry {QueueId} was lost; cancelling this worker's copy of run {PipelineLoggingId}")]
    private static partial void LogLeaseLost(ILogger logger, string queueId, string pipelineLoggingId);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Expired leases: {Requeued} entr(ies) re-queued, {Failed} failed after their last attempt")]
    private static partial void LogRescued(ILogger logger, int requeued, int failed);
}
