using System.Net;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>
/// An app whose dispatcher only wakes on this process's signals (the real-time poll is an hour), so a test can hold
/// queue entries as a "dead" worker would, deterministically. Two attempts per entry.
/// </summary>
public sealed class QueueFixture : PipelineFixture
{
    public QueueFixture()
        : base(manualClock: false, new Dictionary<string, string?>
        {
            ["CONVERGENCE_QUEUE_POLL_SECONDS"] = "3600",
            ["CONVERGENCE_PIPELINE_WORKERS"] = "4",
            ["CONVERGENCE_RUN_MAX_ATTEMPTS"] = "2",
            ["CONVERGENCE_SCHEDULER"] = "external",
        })
    {
    }
}

/// <summary>The durable run queue: quota admission, the per-org concurrent limit at claim, leases, rescue and fencing.</summary>
public sealed class RunQueueTests(QueueFixture fixture) : IClassFixture<QueueFixture>
{
    private static readonly object Day = new { date = "2025-11-20" };

    private PipelineHarness Api => fixture.Harness;

    private IRunQueueStore Queue => Api.Factory.Services.GetRequiredService<IRunQueueStore>();

    [Fact]
    public async Task Burst_50ParallelRunsForAStarterOrg_Admits6AndAnswers429WithRetryAfterToMidnight()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("burst"), "STARTER");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day)));

        responses.Count(r => r.StatusCode == HttpStatusCode.Accepted).ShouldBe(6, "STARTER allows 6 runs a day");
        var refused = responses.Where(r => r.StatusCode != HttpStatusCode.Accepted).ToList();
        refused.Count.ShouldBe(44);
        foreach (var response in refused)
        {
            var problem = await response.ShouldBeProblemAsync(HttpStatusCode.TooManyRequests);
            problem.Json.Str("title").ShouldBe("Run quota exceeded");
            problem.Json.Str("limit").ShouldBe("daily");
            problem.Json.GetProperty("limit_value").GetInt32().ShouldBe(6);
            problem.Json.Str("detail").ShouldContain("daily limit of 6 runs");

            // The fake clock reads 2030-03-14T12:00Z: the daily counter resets in 12 hours.
            response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromHours(12));
        }

        var db = Api.Factory.ControlPlane();
        db.Count("org_meta_pipeline_runs", "org_slug = $org AND pipeline_path = 'testing/rows'", ("$org", org.Slug)).ShouldBe(6, "refused runs leave no row");
        db.Count("org_pipeline_execution_queue", "org_slug = $org", ("$org", org.Slug)).ShouldBe(6);
        db.Scalar("SELECT pipelines_run_today FROM org_usage_quotas WHERE org_slug = $org", ("$org", org.Slug)).ShouldBe(6L);

        // Let the admitted runs finish here, so the worker pool is idle when the next test of the class arranges entries.
        foreach (var response in responses.Where(r => r.StatusCode == HttpStatusCode.Accepted))
        {
            await Api.WaitForRunAsync(client, (await response.ReadBodyAsync()).Json.Str("pipeline_logging_id"));
        }

        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task MonthlyLimit_CountsEarlierDaysOfTheBillingMonth_AndRetryAfterRunsToTheAnniversary()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("month"), "STARTER");
        var db = Api.Factory.ControlPlane();

        // Onboarded today (14 March): the billing month started today; 180 runs on earlier days of it are impossible,
        // so move the subscription start to 1 March and record 180 runs on 1–13 March.
        db.Execute("UPDATE org_subscriptions SET subscription_start = '2030-03-01T00:00:00.0000000Z' WHERE org_slug = $org", ("$org", org.Slug));
        db.Execute("DELETE FROM org_usage_quotas WHERE org_slug = $org", ("$org", org.Slug));
        for (var day = 1; day <= 13; day++)
        {
            db.Execute(
                "INSERT INTO org_usage_quotas VALUES ($org, $date, $runs, 0, 0, $updated, '2030-03-01T00:00:00.0000000Z')",
                ("$org", org.Slug), ("$date", $"2030-03-{day:D2}"), ("$updated", $"2030-03-{day:D2}T00:00:00.0000000Z"), ("$runs", day <= 12 ? 14 : 12));
        }

        using var client = Api.Factory.OrgClient(org.ApiKey);
        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.TooManyRequests);
        problem.Json.Str("limit").ShouldBe("monthly");
        problem.Json.GetProperty("used").GetInt32().ShouldBe(180);
        response.Headers.RetryAfter.ShouldNotBeNull().Delta.ShouldBe(TimeSpan.FromDays(17) + TimeSpan.FromHours(12), "the next anniversary is 1 April 00:00Z");
    }

    [Theory]
    [InlineData("EXPIRED", null, "is EXPIRED")]
    [InlineData("CANCELLED", null, "is CANCELLED")]
    [InlineData("TRIAL", "2030-03-14T11:59:59.0000000Z", "trial ended")]
    public async Task Run_SubscriptionNotUsable_Is403AndStoresNothing(string status, string? trialEnds, string reason)
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("sub"), "SCALE");
        var db = Api.Factory.ControlPlane();
        db.Execute("UPDATE org_subscriptions SET status = $status, trial_ends_at = $ends WHERE org_slug = $org", ("$status", status), ("$ends", trialEnds), ("$org", org.Slug));
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        problem.Json.Str("title").ShouldBe("Subscription not active");
        problem.Json.Str("detail").ShouldContain(reason);
        db.Count("org_pipeline_execution_queue", "org_slug = $org", ("$org", org.Slug)).ShouldBe(0);
    }

    [Fact]
    public async Task Run_TrialNotYetEnded_IsAdmitted()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("trial"), "STARTER");
        Api.Factory.ControlPlane().Execute(
            "UPDATE org_subscriptions SET status = 'TRIAL', trial_ends_at = '2030-03-20T00:00:00.0000000Z' WHERE org_slug = $org", ("$org", org.Slug));
        using var client = Api.Factory.OrgClient(org.ApiKey);

        (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, Day)).Str("status").ShouldBe("COMPLETED");
    }

    [Fact]
    public async Task ConcurrentLimit_ProfessionalOrgWithFiveBlockingRuns_RunsThreeAtOnceAndClaimsNoMore()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("conc"), "PROFESSIONAL");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, Day));
        }

        await WaitUntilAsync(() => Api.Probe.For(org.Slug).Calls.Count(c => c.PsType == "test.block") == 3, "three runs to block");

        // Four workers, one is free, two entries wait: a claim must still refuse them (the org holds 3 of 3).
        using var root = Api.Factory.RootClient();
        using (var process = await root.PostAsync("/api/v1/scheduler/process-queue", null))
        {
            var body = await process.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.GetProperty("claimed").GetArrayLength().ShouldBe(0);
        }

        using (var status = await root.GetAsync("/api/v1/scheduler/status"))
        {
            var body = await status.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.GetProperty("running_per_org").GetProperty(org.Slug).GetInt32().ShouldBe(3);
            body.GetProperty("queued").GetInt32().ShouldBeGreaterThanOrEqualTo(2);
        }

        Api.Probe.For(org.Slug).Release();
        foreach (var id in ids)
        {
            (await Api.WaitForRunAsync(client, id)).Str("status").ShouldBe("COMPLETED");
        }

        Api.Probe.For(org.Slug).Calls.Count(c => c.PsType == "test.block").ShouldBe(5);
    }

    [Fact]
    public async Task LeaseExpiry_AfterAWorkerCrash_IsRetriedOnceWithoutDuplicatingRowsAndTheStaleWorkerIsFenced()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("crash"), "SCALE");
        var slug = OrgSlug.From(org.Slug);
        var pipeline = TestPipelines.RowsPipeline("merge_partition");
        Api.Probe.For(org.Slug).Rows = [PipelineHarness.Row("2025-11-20", "a", 1), PipelineHarness.Row("2025-11-20", "b", 2)];
        var now = Api.Factory.Clock.GetUtcNow();

        // The first attempt: admitted, claimed by a worker that writes its rows and then dies without a word.
        var run = Api.Executor.Prepare(new PipelineRunRequest(pipeline, slug, new Dictionary<string, string> { ["date"] = "2025-11-20" }, PipelineHarness.TestActor(org.Slug), RunTrigger.Api));
        (await Queue.AdmitAsync(new RunAdmission(run, QueuePriority.Api, 2, null, true, now), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();
        var dead = (await Queue.ClaimAsync("dead-worker", now, TimeSpan.Zero, CancellationToken.None)).ShouldNotBeNull();
        dead.Attempt.ShouldBe(1);
        await Api.Executor.RunAsync(new PipelineRunRequest(pipeline, slug, new Dictionary<string, string> { ["date"] = "2025-11-20" }, PipelineHarness.TestActor(org.Slug), RunTrigger.Api), CancellationToken.None);
        var cleanRows = Api.TableRows(org.Slug);
        cleanRows.Count.ShouldBe(2);

        // The rescuer finds the expired lease: the entry goes back to QUEUED and the run to PENDING, attempt 2.
        (await Queue.RescueExpiredAsync(now, CancellationToken.None)).ShouldBe(new RescueOutcome(1, 0));
        var pending = (await Api.Store.FindRunAsync(run.PipelineLoggingId, slug, CancellationToken.None)).ShouldNotBeNull();
        pending.Status.ShouldBe(RunStatus.Pending);
        pending.Attempt.ShouldBe(2);

        // The stale worker wakes up: its completion and its run-row write are both refused.
        (await Queue.CompleteAsync(dead, QueueStatus.Failed, "stale", now, CancellationToken.None)).ShouldBeFalse();
        await Api.Store.SaveRunAsync(run with { Status = RunStatus.Running, Attempt = 1, StartTime = now, WorkerId = "dead-worker" }, CancellationToken.None);
        (await Api.Store.FindRunAsync(run.PipelineLoggingId, slug, CancellationToken.None)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Pending);

        using var root = Api.Factory.RootClient();
        using (var process = await root.PostAsync("/api/v1/scheduler/process-queue", null))
        {
            var body = await process.ShouldBeJsonAsync(HttpStatusCode.OK);
            var claimed = body.GetProperty("claimed").EnumerateArray().Where(c => c.Str("pipeline_logging_id") == run.PipelineLoggingId).ShouldHaveSingleItem();
            claimed.GetProperty("attempt").GetInt32().ShouldBe(2);
        }

        using var client = Api.Factory.OrgClient(org.ApiKey);
        var done = await Api.WaitForRunAsync(client, run.PipelineLoggingId);
        done.Str("status").ShouldBe("COMPLETED");
        Api.TableRows(org.Slug).ShouldBe(cleanRows, "the retry replaced the day's rows: exactly the rows of a clean run");
        IReadOnlyDictionary<string, object?> Entry() =>
            Api.Factory.ControlPlane().Rows("SELECT * FROM org_pipeline_execution_queue WHERE pipeline_logging_id = $id", ("$id", run.PipelineLoggingId)).ShouldHaveSingleItem();

        // The worker closes the queue entry just after it writes the finished run row.
        await WaitUntilAsync(() => (string)Entry()["status"]! is not ("CLAIMED" or "RUNNING"), "the queue entry to close");
        var entry = Entry();
        entry["status"].ShouldBe("COMPLETED");
        entry["attempts"].ShouldBe(2L);
        ((string)entry["last_error"]!).ShouldContain("dead-worker");
    }

    [Fact]
    public async Task QueuedRun_OfAPipelineThisInstanceLacks_EndsFailedWithTheReason_NotPendingForEver()
    {
        // Another instance, deployed with a pipeline this one's configs lack, admitted the run.
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("gone"), "SCALE");
        var slug = OrgSlug.From(org.Slug);
        var run = Api.Executor.Prepare(new PipelineRunRequest(TestPipelines.Rows, slug, new Dictionary<string, string> { ["date"] = "2025-11-20" }, PipelineHarness.TestActor(org.Slug), RunTrigger.Api))
            with { PipelinePath = "testing/removed_in_this_version" };
        (await Queue.AdmitAsync(new RunAdmission(run, QueuePriority.Api, 2, null, true, Api.Factory.Clock.GetUtcNow()), CancellationToken.None))
            .ShouldBeOfType<AdmissionOutcome.Admitted>();

        using var root = Api.Factory.RootClient();
        using (var process = await root.PostAsync("/api/v1/scheduler/process-queue", null))
        {
            await process.ShouldBeJsonAsync(HttpStatusCode.OK);
        }

        using var client = Api.Factory.OrgClient(org.ApiKey);
        var done = await Api.WaitForRunAsync(client, run.PipelineLoggingId);
        done.Str("status").ShouldBe("FAILED");
        done.Str("error_message").ShouldContain("testing/removed_in_this_version");
        IReadOnlyDictionary<string, object?> Entry() =>
            Api.Factory.ControlPlane().Rows("SELECT * FROM org_pipeline_execution_queue WHERE pipeline_logging_id = $id", ("$id", run.PipelineLoggingId)).ShouldHaveSingleItem();
        await WaitUntilAsync(() => (string)Entry()["status"]! is not ("CLAIMED" or "RUNNING"), "the queue entry to close");
        Entry()["status"].ShouldBe("FAILED");
        ((string)Entry()["last_error"]!).ShouldContain("testing/removed_in_this_version");
    }

    [Fact]
    public async Task LeaseExpiry_OnTheLastAttempt_FailsTheEntryAndTheRunWithTheReason()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("lost"), "SCALE");
        var slug = OrgSlug.From(org.Slug);
        var now = Api.Factory.Clock.GetUtcNow();
        var run = Api.Executor.Prepare(new PipelineRunRequest(TestPipelines.Rows, slug, new Dictionary<string, string> { ["date"] = "2025-11-20" }, PipelineHarness.TestActor(org.Slug), RunTrigger.Api));
        await Queue.AdmitAsync(new RunAdmission(run, QueuePriority.Api, 2, null, true, now), CancellationToken.None);

        (await Queue.ClaimAsync("dead-1", now, TimeSpan.Zero, CancellationToken.None)).ShouldNotBeNull();
        (await Queue.RescueExpiredAsync(now, CancellationToken.None)).ShouldBe(new RescueOutcome(1, 0));
        (await Queue.ClaimAsync("dead-2", now, TimeSpan.Zero, CancellationToken.None)).ShouldNotBeNull().Attempt.ShouldBe(2);
        (await Queue.RescueExpiredAsync(now, CancellationToken.None)).ShouldBe(new RescueOutcome(0, 1));

        var failed = (await Api.Store.FindRunAsync(run.PipelineLoggingId, slug, CancellationToken.None)).ShouldNotBeNull();
        failed.Status.ShouldBe(RunStatus.Failed);
        failed.ErrorClass.ShouldBe("RunAbandoned");
        failed.ErrorMessage.ShouldNotBeNull().ShouldContain("No attempts are left");
        var entry = Api.Factory.ControlPlane().Rows("SELECT status, last_error FROM org_pipeline_execution_queue WHERE pipeline_logging_id = $id", ("$id", run.PipelineLoggingId)).ShouldHaveSingleItem();
        entry["status"].ShouldBe("FAILED");
        ((string)entry["last_error"]!).ShouldContain("dead-2");
    }

    [Fact]
    public async Task ResetDailyQuotas_StartsTodaysCountersAndPurgesRowsPastRetention()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("reset"), "STARTER");
        var db = Api.Factory.ControlPlane();
        db.Execute("DELETE FROM org_usage_quotas WHERE org_slug = $org", ("$org", org.Slug));
        db.Execute(
            "INSERT INTO org_usage_quotas VALUES ($org, '2029-12-01', 3, 3, 0, '2029-12-01T00:00:00.0000000Z', '2029-12-01T00:00:00.0000000Z')", ("$org", org.Slug));
        db.Execute(
            "INSERT INTO org_usage_quotas VALUES ($org, '2030-03-13', 6, 6, 0, '2030-03-13T00:00:00.0000000Z', '2030-03-14T00:00:00.0000000Z')", ("$org", org.Slug));
        using var root = Api.Factory.RootClient();

        using var response = await root.PostAsync("/api/v1/scheduler/reset-daily-quotas", null);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("usage_date").ShouldBe("2030-03-14");
        body.GetProperty("retention_days").GetInt32().ShouldBe(90);
        body.GetProperty("quota_rows_purged").GetInt32().ShouldBeGreaterThanOrEqualTo(1);
        var rows = db.Rows("SELECT usage_date, pipelines_run_today FROM org_usage_quotas WHERE org_slug = $org ORDER BY usage_date", ("$org", org.Slug));
        rows.Select(r => r["usage_date"]).ShouldBe(["2030-03-13", "2030-03-14"], "the December row is past 90 days; today starts at zero");
        rows[1]["pipelines_run_today"].ShouldBe(0L);

        // Yesterday's 6 runs are over: today admits again.
        using var client = Api.Factory.OrgClient(org.ApiKey);
        using var run = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day);
        run.StatusCode.ShouldBe(HttpStatusCode.Accepted);
        await Api.WaitForRunAsync(client, (await run.ReadBodyAsync()).Json.Str("pipeline_logging_id"));
    }

    [Fact]
    public async Task SchedulerRoutes_RefuseOrgKeys()
    {
        var org = await Api.Factory.OnboardAsync(PipelineHarness.NewSlug("noroot"), "SCALE");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        foreach (var (method, url) in new[] { (HttpMethod.Post, "trigger"), (HttpMethod.Post, "process-queue"), (HttpMethod.Get, "status"), (HttpMethod.Post, "reset-daily-quotas") })
        {
            using var response = await client.SendAsync(new HttpRequestMessage(method, $"/api/v1/scheduler/{url}"));
            await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > PipelineHarness.Patience)
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }

            await Task.Delay(10);
        }
    }
}
