using System.Net;
using Convergence.Api.Pipelines;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>
/// A run whose worker died (no heartbeat for longer than four heartbeat intervals) is failed by the maintenance sweep,
/// so no run stays RUNNING forever; runs with a fresh heartbeat are left alone.
/// </summary>
public sealed class CrashRecoveryTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task MaintenanceTick_RunOfADeadWorker_IsFailedAsAbandonedWithItsSteps()
    {
        var org = await Api.OnboardAsync("crash");
        var now = Api.Factory.Clock.GetUtcNow();
        var dead = await CreateRunningAsync(org.Slug, "dead-worker", heartbeat: now - TimeSpan.FromMinutes(10));
        var fresh = await CreateRunningAsync(org.Slug, "live-worker", heartbeat: now);

        await MaintenanceTickAsync();

        using var client = Api.Factory.OrgClient(org.ApiKey);
        using (var response = await client.GetAsync($"/api/v1/pipelines/runs/{dead}"))
        {
            var run = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            run.Str("status").ShouldBe("FAILED");
            run.Str("error_class").ShouldBe("RunAbandoned");
            run.Str("error_message").ShouldContain("worker");
            run.GetProperty("end_time").GetDateTimeOffset().ShouldBe(now);
        }

        var steps = (await PipelineHarness.GetStepsAsync(client, dead)).GetProperty("steps").EnumerateArray().ToDictionary(s => s.Str("step_id"));
        steps["running"].Str("status").ShouldBe("FAILED");
        steps["running"].Str("error_class").ShouldBe("RunAbandoned");
        steps["pending"].Str("status").ShouldBe("SKIPPED");

        var untouched = (await Api.Store.FindRunAsync(fresh, null, CancellationToken.None)).ShouldNotBeNull();
        untouched.Status.ShouldBe(RunStatus.Running);
        untouched.ErrorClass.ShouldBeNull();
        (await Api.Store.ListStepsAsync(fresh, null, CancellationToken.None)).Single(s => s.StepId == "running").Status.ShouldBe(RunStatus.Running);
    }

    [Fact]
    public async Task MaintenanceTick_OwnStaleRun_IsHeartbeatenNotFailed()
    {
        var org = await Api.OnboardAsync("crash");
        var now = Api.Factory.Clock.GetUtcNow();
        var worker = Api.Factory.Services.GetRequiredService<WorkerIdentity>();
        var own = await CreateRunningAsync(org.Slug, worker.Id, heartbeat: now - TimeSpan.FromMinutes(10));

        await MaintenanceTickAsync();

        var run = (await Api.Store.FindRunAsync(own, null, CancellationToken.None)).ShouldNotBeNull();
        run.Status.ShouldBe(RunStatus.Running, "this process is alive: its heartbeat refreshes its runs before the sweep");
        run.HeartbeatAt.ShouldBe(now);
    }

    [Fact]
    public async Task MaintenanceTick_FinishedRunWithAnOldHeartbeat_IsLeftAlone()
    {
        var org = await Api.OnboardAsync("crash");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var done = (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-20" })).Str("pipeline_logging_id");
        Api.Factory.Clock.Advance(TimeSpan.FromHours(1));

        await MaintenanceTickAsync();

        var run = (await Api.Store.FindRunAsync(done, null, CancellationToken.None)).ShouldNotBeNull();
        run.Status.ShouldBe(RunStatus.Completed);
        run.ErrorClass.ShouldBeNull();
    }

    [Fact]
    public async Task MaintenanceTick_CancelRequestedThroughTheStoreOnly_CancelsTheRunExecutingHere()
    {
        // Another instance's API records the request; only this process's heartbeat can deliver it to the run.
        var org = await Api.OnboardAsync("forward");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var id = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, new { date = "2025-11-20" });
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);
        (await Api.Store.RequestCancelAsync(id, null, Api.Factory.Clock.GetUtcNow(), CancellationToken.None)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Running);

        await MaintenanceTickAsync();

        var run = await Api.WaitForRunAsync(client, id);
        run.Str("status").ShouldBe("CANCELLED", run.ToString());
        Api.Probe.For(org.Slug).CallsOf(id).Select(c => c.StepId).ShouldBe(["wait"]);
    }

    private async Task MaintenanceTickAsync()
    {
        var maintenance = Api.Factory.Services.GetServices<IHostedService>().OfType<RunMaintenanceService>().ShouldHaveSingleItem();
        await maintenance.TickAsync(CancellationToken.None);
    }

    /// <summary>Records a RUNNING run of testing/block held by <paramref name="workerId"/>, with a RUNNING and a PENDING step.</summary>
    private async Task<string> CreateRunningAsync(string org, string workerId, DateTimeOffset heartbeat)
    {
        var id = Guid.CreateVersion7().ToString();
        var slug = OrgSlug.From(org);
        var started = heartbeat - TimeSpan.FromMinutes(1);
        await Api.Store.CreateRunAsync(
            new PipelineRunRecord(
                id, slug, $"{org}-testing-block", TestPipelines.Block, RunTrigger.Api, null, null, null, RunStatus.Running,
                new Dictionary<string, string> { ["date"] = "2025-11-20" }, null, started, null, null, null, 1, started,
                WorkerId: workerId, HeartbeatAt: heartbeat),
            CancellationToken.None);
        await Api.Store.SaveStepAsync(new StepLogRecord($"{id}-00", id, slug, "running", "test.block", RunStatus.Running, started, null, null, 1, null, null, null), CancellationToken.None);
        await Api.Store.SaveStepAsync(new StepLogRecord($"{id}-01", id, slug, "pending", "test.rows", RunStatus.Pending, null, null, null, 0, null, null, null), CancellationToken.None);
        return id;
    }
}
