using System.Net;
using System.Text.Json;
using Convergence.Api.Pipelines;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>
/// <c>POST /api/v1/scheduler/trigger</c> on the fake clock (Thu 14 Mar 2030 12:00Z; Berlin on CET, +01:00): one queue
/// entry per due tick however often or concurrently it is called, the schedule advanced, <c>{date}</c> the scheduled
/// local date, one catch-up run after downtime, over-quota ticks skipped with the reason.
/// </summary>
public sealed class TriggerTests : IAsyncLifetime
{
    private readonly PipelineHarness _api = new(settings: new Dictionary<string, string?>
    {
        ["CONVERGENCE_SCHEDULER"] = "external",
        ["CONVERGENCE_RUN_HEARTBEAT_SECONDS"] = "3600",
    });

    public async Task InitializeAsync() => await _api.Factory.BootstrapAsync();

    public async Task DisposeAsync() => await _api.DisposeAsync();

    [Fact]
    public async Task Trigger_ConcurrentAndRepeated_QueuesEachDueTickOnceAndAdvancesTheSchedule()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("tick"), "SCALE");
        var configId = await CreateScheduleAsync(org, "0 6 * * *", "Europe/Berlin");
        MoveTo(_api.Factory.Clock, At("2030-03-15T05:00:30Z")); // 06:00:30 CET on Friday

        using var root = _api.Factory.RootClient();
        var bodies = await Task.WhenAll(Enumerable.Range(0, 5).Select(async _ =>
        {
            using var response = await root.PostAsync("/api/v1/scheduler/trigger", null);
            return await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        }));
        using (var again = await root.PostAsync("/api/v1/scheduler/trigger", null))
        {
            (await again.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("due").GetInt32().ShouldBe(0, "the schedule advanced");
        }

        bodies.Sum(b => b.GetProperty("queued").GetInt32()).ShouldBe(1);
        var db = _api.Factory.ControlPlane();
        var entry = db.Rows("SELECT * FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug)).ShouldHaveSingleItem();
        entry["scheduled_for"].ShouldBe("2030-03-15T05:00:00.0000000Z");
        entry["priority"].ShouldBe(10L, "scheduled runs after API runs (lower first)");
        entry["idempotency_key"].ShouldBe($"schedule:{TestPipelines.Rows}:2030-03-15T05:00:00.0000000Z", "the entry is the tick's record, once per (org, pipeline, scheduled_for)");
        entry["queue_id"].ShouldBe(entry["pipeline_logging_id"], "a scheduled entry's id is its run's");
        db.Scalar("SELECT next_run_time FROM org_pipeline_configs WHERE config_id = $id", ("$id", configId)).ShouldBe("2030-03-16T05:00:00.0000000Z");

        using var client = _api.Factory.OrgClient(org.ApiKey);
        var run = await _api.WaitForRunAsync(client, (string)entry["pipeline_logging_id"]!);
        run.Str("status").ShouldBe("COMPLETED");
        run.Str("trigger").ShouldBe("SCHEDULER");
        run.GetProperty("parameters").Str("date").ShouldBe("2030-03-15", "the scheduled local date");
    }

    [Fact]
    public async Task Trigger_LocalDateDiffersFromUtc_UsesTheOrgsLocalDate()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("tokyo"), "SCALE");
        await CreateScheduleAsync(org, "30 7 * * *", "Asia/Tokyo"); // 07:30 JST = 22:30Z the day before
        MoveTo(_api.Factory.Clock, At("2030-03-14T22:31:00Z"));

        using var root = _api.Factory.RootClient();
        using var response = await root.PostAsync("/api/v1/scheduler/trigger", null);
        (await response.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("queued").GetInt32().ShouldBe(1);

        var parameters = (string)_api.Factory.ControlPlane().Scalar("SELECT parameters FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug))!;
        JsonDocument.Parse(parameters).RootElement.GetProperty("date").GetString().ShouldBe("2030-03-15");
    }

    [Fact]
    public async Task Trigger_AfterThreeDaysOfDowntime_RunsOnceForTheLatestTickAndCountsTheMissedOnes()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("late"), "SCALE");
        var configId = await CreateScheduleAsync(org, "0 6 * * *", "Europe/Berlin");
        MoveTo(_api.Factory.Clock, At("2030-03-18T09:00:00Z")); // due 15, 16, 17 and 18 March

        using var root = _api.Factory.RootClient();
        using var response = await root.PostAsync("/api/v1/scheduler/trigger", null);
        (await response.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("queued").GetInt32().ShouldBe(1);

        var db = _api.Factory.ControlPlane();
        using var client = _api.Factory.OrgClient(org.ApiKey);
        var id = (string)db.Scalar("SELECT pipeline_logging_id FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug))!;
        (await _api.WaitForRunAsync(client, id)).Str("status").ShouldBe("COMPLETED");
        var tick = db.Rows("SELECT scheduled_for, last_error FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug)).ShouldHaveSingleItem();
        tick["scheduled_for"].ShouldBe("2030-03-18T05:00:00.0000000Z");
        ((string)tick["last_error"]!).ShouldContain("3 earlier due tick(s)", customMessage: "the catch-up note stays when the run completes");
        db.Scalar("SELECT next_run_time FROM org_pipeline_configs WHERE config_id = $id", ("$id", configId)).ShouldBe("2030-03-19T05:00:00.0000000Z");
        JsonDocument.Parse((string)db.Scalar("SELECT parameters FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug))!).RootElement.GetProperty("date").GetString().ShouldBe("2030-03-18");
    }

    [Fact]
    public async Task Trigger_OrgOverItsDailyLimit_SkipsTheTickWithTheReasonAndStillAdvances()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("full"), "STARTER");
        var configId = await CreateScheduleAsync(org, "*/30 * * * *", "UTC");
        var db = _api.Factory.ControlPlane();
        db.Execute("UPDATE org_usage_quotas SET pipelines_run_today = 6, pipelines_run_month = 6 WHERE org_slug = $org", ("$org", org.Slug));
        MoveTo(_api.Factory.Clock, At("2030-03-14T12:30:05Z"));

        using var root = _api.Factory.RootClient();
        using var response = await root.PostAsync("/api/v1/scheduler/trigger", null);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("skipped").GetInt32().ShouldBe(1);
        var skipped = body.GetProperty("not_queued").EnumerateArray().ShouldHaveSingleItem();
        skipped.Str("reason").ShouldContain("daily limit of 6 runs");
        var tick = db.Rows("SELECT status, last_error, pipeline_logging_id FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug)).ShouldHaveSingleItem();
        tick["status"].ShouldBe("SKIPPED", "the entry is the tick's record: skipped, never claimed");
        ((string)tick["last_error"]!).ShouldContain("daily limit");
        tick["pipeline_logging_id"].ShouldBeNull("no run");
        db.Count("org_meta_pipeline_runs", "org_slug = $org AND \"trigger\" = 'SCHEDULER'", ("$org", org.Slug)).ShouldBe(0, "nothing half-made");
        db.Scalar("SELECT next_run_time FROM org_pipeline_configs WHERE config_id = $id", ("$id", configId)).ShouldBe("2030-03-14T13:00:00.0000000Z");
    }

    [Fact]
    public async Task Trigger_EightDueTicksOfAStarterOrgInOneBatch_QueuesSixAndSkipsTwo()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("batch"), "STARTER");
        for (var minute = 0; minute < 8; minute++)
        {
            await CreateScheduleAsync(org, $"{minute} 13 * * *", "UTC");
        }

        MoveTo(_api.Factory.Clock, At("2030-03-14T13:07:30Z"));
        using var root = _api.Factory.RootClient();
        using var response = await root.PostAsync("/api/v1/scheduler/trigger", null);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("queued").GetInt32().ShouldBe(6);
        body.GetProperty("skipped").GetInt32().ShouldBe(2);
        var db = _api.Factory.ControlPlane();
        db.Scalar("SELECT pipelines_run_today FROM org_usage_quotas WHERE org_slug = $org AND usage_date = '2030-03-14'", ("$org", org.Slug)).ShouldBe(6L);
        db.Count("org_pipeline_execution_queue", "org_slug = $org AND status = 'SKIPPED' AND pipeline_logging_id IS NULL AND last_error LIKE '%daily limit of 6%'", ("$org", org.Slug))
            .ShouldBe(2);
        var queued = db.Rows("SELECT pipeline_logging_id FROM org_pipeline_execution_queue WHERE org_slug = $org AND status <> 'SKIPPED'", ("$org", org.Slug));
        queued.Count.ShouldBe(6);

        // Each queued run's row is created by the worker that claims it; all six run.
        using var client = _api.Factory.OrgClient(org.ApiKey);
        foreach (var entry in queued)
        {
            (await _api.WaitForRunAsync(client, (string)entry["pipeline_logging_id"]!)).Str("status").ShouldBe("COMPLETED");
        }

        db.Count("org_meta_pipeline_runs", "org_slug = $org AND \"trigger\" = 'SCHEDULER'", ("$org", org.Slug)).ShouldBe(6);
    }

    [Fact]
    public async Task Trigger_InBatchesOfThree_CountsTheQuotaAcrossBatchesAndParksAnUnusableScheduleMidway()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("pipe"), "STARTER");
        var configs = new List<string>();
        for (var minute = 0; minute < 9; minute++)
        {
            configs.Add(await CreateScheduleAsync(org, $"{minute} 13 * * *", "UTC"));
        }

        var db = _api.Factory.ControlPlane();
        db.Execute("UPDATE org_pipeline_configs SET pipeline = 'testing/removed' WHERE config_id = $id", ("$id", configs[4]));
        MoveTo(_api.Factory.Clock, At("2030-03-14T13:08:30Z"));
        var services = _api.Factory.Services;
        var trigger = new Convergence.Core.Scheduling.ScheduleTrigger(
            services.GetRequiredService<Convergence.Core.Scheduling.IScheduleStore>(),
            services.GetRequiredService<Convergence.Core.Scheduling.IRunQueueStore>(),
            services.GetRequiredService<Convergence.Core.Pipelines.PipelineExecutor>(),
            _api.Factory.Clock,
            3,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Convergence.Core.Scheduling.ScheduleTrigger>.Instance)
        {
            TicksPerBatch = 3,
        };

        var result = await trigger.TriggerAsync(CancellationToken.None);

        (result.Due, result.Queued, result.Skipped, result.Invalid).ShouldBe((9, 6, 2, 1));
        result.Outcomes.Select(o => o.ScheduledFor.Minute).ShouldBe([0, 1, 2, 3, 5, 6, 7, 8], "in the org's tick order, batch after batch");
        result.Outcomes.Where(o => o.Status == "SKIPPED").Select(o => o.ScheduledFor.Minute).ShouldBe([7, 8], "the quota counts the earlier batches' runs");
        db.Scalar("SELECT pipelines_run_today FROM org_usage_quotas WHERE org_slug = $org AND usage_date = '2030-03-14'", ("$org", org.Slug)).ShouldBe(6L);
        db.Count("org_pipeline_configs", "config_id = $id AND next_run_time IS NULL", ("$id", configs[4])).ShouldBe(1, "parked");
        db.Rows("SELECT cron_schedule, next_run_time FROM org_pipeline_configs WHERE org_slug = $org", ("$org", org.Slug))
            .Count(r => (string?)r["next_run_time"] == $"2030-03-15T13:0{((string)r["cron_schedule"]!)[0]}:00.0000000Z").ShouldBe(8);
        (await trigger.TriggerAsync(CancellationToken.None)).Due.ShouldBe(0);
    }

    [Fact]
    public async Task ScheduledRun_WhosePipelineIsGoneByItsClaim_FailsAtTheClaimAndReadsAsAFailedRun()
    {
        var org = await _api.Factory.OnboardAsync(PipelineHarness.NewSlug("gone"), "SCALE");
        var configId = await CreateScheduleAsync(org, "0 6 * * *", "UTC");
        var db = _api.Factory.ControlPlane();
        var next = DateTimeOffset.Parse((string)db.Scalar("SELECT next_run_time FROM org_pipeline_configs WHERE config_id = $id", ("$id", configId))!, System.Globalization.CultureInfo.InvariantCulture);

        // A tick queued while the pipeline existed; it is gone when a worker claims the entry.
        var tick = new Convergence.Core.Scheduling.ScheduledTick(
            configId, Convergence.Core.Organizations.OrgSlug.From(org.Slug), "testing/removed", next, next, next.AddDays(1), 0,
            Guid.CreateVersion7().ToString(), new Dictionary<string, string> { ["date"] = "2030-03-15" }, 3);
        var queue = _api.Factory.Services.GetRequiredService<Convergence.Core.Scheduling.IRunQueueStore>();
        (await queue.EnqueueTicksAsync([tick], _api.Factory.Clock.GetUtcNow(), CancellationToken.None)).ShouldHaveSingleItem().Status.ShouldBe("QUEUED");
        _api.Factory.Services.GetRequiredService<RunQueueSignal>().Notify();

        using var client = _api.Factory.OrgClient(org.ApiKey);
        var run = await _api.WaitForRunAsync(client, tick.RunId);
        run.Str("status").ShouldBe("FAILED");
        run.Str("error_class").ShouldBe("RunNotStarted");
        run.Str("error_message").ShouldContain("could not be prepared");
        db.Scalar("SELECT status FROM org_pipeline_execution_queue WHERE queue_id = $id", ("$id", tick.RunId)).ShouldBe("FAILED");
        db.Count("org_meta_pipeline_runs", "pipeline_logging_id = $id", ("$id", tick.RunId)).ShouldBe(0);
    }

    [Fact]
    public async Task EmbeddedScheduler_Tick_TriggersDueSchedulesWithoutAnExternalCron()
    {
        await using var embedded = new PipelineHarness(settings: new Dictionary<string, string?> { ["CONVERGENCE_RUN_HEARTBEAT_SECONDS"] = "3600" });
        await embedded.Factory.BootstrapAsync();
        var org = await embedded.Factory.OnboardAsync(PipelineHarness.NewSlug("emb"), "SCALE");
        using (var client = embedded.Factory.OrgClient(org.ApiKey))
        using (var created = await client.PostJsonAsync($"/api/v1/schedules/{org.Slug}", new { pipeline = TestPipelines.Rows, cron_schedule = "15 12 * * *", timezone = "UTC" }))
        {
            await created.ShouldBeJsonAsync(HttpStatusCode.Created);
        }

        MoveTo(embedded.Factory.Clock, At("2030-03-14T12:15:01Z"));
        var scheduler = embedded.Factory.Services.GetServices<IHostedService>().OfType<EmbeddedSchedulerService>().ShouldHaveSingleItem();
        await scheduler.TickAsync(CancellationToken.None);

        var id = embedded.Factory.ControlPlane().Scalar("SELECT pipeline_logging_id FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org.Slug));
        using var orgClient = embedded.Factory.OrgClient(org.ApiKey);
        (await embedded.WaitForRunAsync(orgClient, (string)id!)).Str("status").ShouldBe("COMPLETED");
    }

    private async Task<string> CreateScheduleAsync(OnboardResult org, string cron, string timezone)
    {
        using var client = _api.Factory.OrgClient(org.ApiKey);
        using var created = await client.PostJsonAsync($"/api/v1/schedules/{org.Slug}", new { pipeline = TestPipelines.Rows, cron_schedule = cron, timezone });
        return (await created.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("config_id");
    }

    private static void MoveTo(FakeTimeProvider clock, DateTimeOffset at) => clock.Advance(at - clock.GetUtcNow());

    private static DateTimeOffset At(string text) => DateTimeOffset.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
}
