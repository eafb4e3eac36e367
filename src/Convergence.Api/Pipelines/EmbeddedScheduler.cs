using Convergence.Api.Configuration;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;

namespace Convergence.Api.Pipelines;

/// <summary>
/// The embedded default's cron: every <see cref="ConvergenceSettings.SchedulerInterval"/> it triggers due schedules,
/// and once per UTC day it resets the daily quotas, so one process runs everything with no external scheduler. Queue
/// processing needs no timer here: the worker pool claims on its own and run maintenance rescues expired leases.
/// With <c>CONVERGENCE_SCHEDULER=external</c> this service is not registered and a cron calls the endpoints instead.
/// </summary>
internal sealed partial class EmbeddedSchedulerService(
    ScheduleTrigger trigger,
    IRunQueueStore queue,
    IControlPlaneStore store,
    RunQueueSignal signal,
    ConvergenceSettings settings,
    TimeProvider time,
    ILogger<EmbeddedSchedulerService> logger) : BackgroundService
{
    private DateOnly? _lastReset;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.SchedulerInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
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
    }

    internal async Task TickAsync(CancellationToken cancellationToken)
    {
        if (!await store.IsBootstrappedAsync(cancellationToken))
        {
            return;
        }

        var now = time.GetUtcNow();
        var today = QuotaCalendar.UsageDate(now);
        if (_lastReset != today)
        {
            await queue.ResetDailyQuotasAsync(now, today.AddDays(-settings.QuotaRetentionDays), cancellationToken);
            _lastReset = today;
        }

        if ((await trigger.TriggerAsync(cancellationToken)).Queued > 0)
        {
            signal.Notify();
        }
    }

    [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "Embedded scheduler tick failed: {Problem}")]
    private static partial void LogTickFailed(ILogger logger, string problem);
}
