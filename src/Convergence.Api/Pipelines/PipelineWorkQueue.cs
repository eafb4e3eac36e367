using System.Threading.Channels;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Api.Pipelines;

/// <summary>The bounded in-process queue of run ids waiting for a worker.</summary>
public sealed class PipelineWorkQueue(int capacity)
{
    private readonly Channel<string> _channel = Channel.CreateBounded<string>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.Wait });

    public int Capacity => capacity;

    /// <summary>Queues a run; <c>false</c> when the queue is full.</summary>
    public bool TryEnqueue(string runId) => _channel.Writer.TryWrite(runId);

    internal ChannelReader<string> Reader => _channel.Reader;
}

/// <summary>
/// The worker pool: a fixed number of loops that take run ids off <see cref="PipelineWorkQueue"/> and execute them.
/// A run cancelled while it waited is closed as CANCELLED without running.
/// </summary>
internal sealed partial class PipelineWorkerService(
    PipelineWorkQueue queue,
    PipelineExecutor executor,
    IControlPlaneStore store,
    TimeProvider time,
    ConvergenceWorkerOptions options,
    ILogger<PipelineWorkerService> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, options.Workers).Select(_ => Task.Run(() => WorkAsync(stoppingToken), CancellationToken.None)));

    private async Task WorkAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var runId in queue.Reader.ReadAllAsync(stoppingToken))
            {
                await RunOneAsync(runId, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: queued runs stay PENDING and the abandoned-run sweep closes them.
        }
    }

    private async Task RunOneAsync(string runId, CancellationToken stoppingToken)
    {
        try
        {
            var run = await store.FindRunAsync(runId, null, stoppingToken);
            if (run is null || run.IsFinished)
            {
                return;
            }

            if (run.CancelRequestedAt is not null)
            {
                var now = time.GetUtcNow();
                await store.SaveRunAsync(run with { Status = RunStatus.Cancelled, EndTime = now, ErrorClass = "Cancelled", ErrorMessage = "Cancelled before it started." }, stoppingToken);
                return;
            }

            var actor = new Actor(
                run.OrgApiKeyId is null ? Actor.RootType : Actor.OrgKeyType, run.OrgApiKeyId, run.OrgSlug, run.TriggeredBy, run.RequestId);
            await executor.ExecuteAsync(run, actor, stoppingToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            // The executor has recorded the failure on the run; the worker only notes it and moves on.
            LogRunEnded(logger, runId, ex.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Worker finished run {PipelineLoggingId} with {ErrorClass}")]
    private static partial void LogRunEnded(ILogger logger, string pipelineLoggingId, string errorClass);
}

/// <summary>Sizes of the in-process worker pool.</summary>
public sealed record ConvergenceWorkerOptions(int Workers, int QueueCapacity, TimeSpan HeartbeatInterval)
{
    /// <summary>A run whose heartbeat is older than this is abandoned (its worker died).</summary>
    public TimeSpan StaleAfter => HeartbeatInterval * 4;
}

/// <summary>
/// Keeps runs honest: refreshes the heartbeat of this worker's runs, forwards cancellation requested elsewhere, and
/// fails runs whose worker stopped heartbeating (a crash or kill), so no run stays RUNNING forever.
/// </summary>
internal sealed partial class RunMaintenanceService(
    IControlPlaneStore store,
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
        foreach (var runId in await store.HeartbeatAsync(worker.Id, now, cancellationToken))
        {
            cancellations.TryCancel(runId);
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
}
