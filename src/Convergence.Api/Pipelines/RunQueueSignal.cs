using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;

namespace Convergence.Api.Pipelines;

/// <summary>
/// Wakes the dispatchers when the queue may hold work they can claim: a run was admitted, a run ended (its org may
/// have a free slot now), or leases were rescued. <see cref="Notify"/> wakes this instance at once and, through the
/// store's <see cref="IRunQueueBroadcast"/> when it has one (PostgreSQL), the other instances too; without one, other
/// instances find the work at their next poll.
/// </summary>
/// <remarks>
/// Broadcasts are coalesced: at most one is being sent and one waiting, however often <see cref="Notify"/> is called,
/// since one wake-up makes a listener look at the whole queue.
/// </remarks>
public sealed partial class RunQueueSignal(WorkerIdentity worker, ILogger<RunQueueSignal> logger, IRunQueueBroadcast? broadcast = null)
{
    private readonly SemaphoreSlim _sending = new(1, 1);
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _broadcastPending;

    /// <summary>A task that completes at the next wake-up; take it before looking at the queue, so no wake-up is missed.</summary>
    public Task Next => Volatile.Read(ref _next).Task;

    /// <summary>Whether wake-ups reach other instances (the store has a broadcast).</summary>
    public bool Broadcasts => broadcast is not null;

    /// <summary>Wakes this instance's dispatcher and, when the store can, the other instances'.</summary>
    public void Notify()
    {
        WakeLocal();
        if (broadcast is not null && Interlocked.Exchange(ref _broadcastPending, 1) == 0)
        {
            _ = BroadcastAsync(broadcast);
        }
    }

    /// <summary>Wakes this instance's dispatcher only (a wake-up heard from another instance).</summary>
    public void WakeLocal() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private async Task BroadcastAsync(IRunQueueBroadcast target)
    {
        await _sending.WaitAsync();
        try
        {
            // Cleared before sending: a Notify from now on schedules another send, which this one may not cover.
            Volatile.Write(ref _broadcastPending, 0);
            await target.PublishAsync(worker.Id, CancellationToken.None);
        }
        catch (Exception ex)
        {
            LogBroadcastFailed(logger, ex.Message);
        }
        finally
        {
            _sending.Release();
        }
    }

    [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "Could not wake the other instances (they find the work at their next poll): {Problem}")]
    private static partial void LogBroadcastFailed(ILogger logger, string problem);
}

/// <summary>
/// Hears the other instances' run-queue wake-ups (<see cref="IRunQueueBroadcast.ListenAsync"/>) and wakes this
/// instance's dispatcher. A lost connection is logged and listened to again after <see cref="ReconnectDelay"/>; the
/// dispatcher's poll covers the gap.
/// </summary>
internal sealed partial class RunQueueListenerService(
    RunQueueSignal signal, WorkerIdentity worker, ILogger<RunQueueListenerService> logger, IRunQueueBroadcast? broadcast = null) : BackgroundService
{
    /// <summary>Liveness, not business time: the real clock, like the dispatcher's poll.</summary>
    internal static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (broadcast is null)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await broadcast.ListenAsync(worker.Id, signal.WakeLocal, stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogListenFailed(logger, ex.Message, ReconnectDelay.TotalSeconds);
                try
                {
                    await Task.Delay(ReconnectDelay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [LoggerMessage(EventId = 3013, Level = LogLevel.Warning, Message = "Not hearing other instances' run-queue wake-ups (polling covers them): {Problem}; listening again in {Seconds} s")]
    private static partial void LogListenFailed(ILogger logger, string problem, double seconds);
}
