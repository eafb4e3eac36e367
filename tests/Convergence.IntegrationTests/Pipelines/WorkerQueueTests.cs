using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>The bounded run queue and its single worker: runs wait PENDING, can be cancelled before they start, and a full queue is a 503.</summary>
public sealed class WorkerQueueTests(SingleWorkerPipelineFixture fixture) : IClassFixture<SingleWorkerPipelineFixture>
{
    private static readonly object Day = new { date = "2025-11-20" };

    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task Cancel_PendingRun_IsClosedCancelledWithoutRunning()
    {
        var org = await Api.OnboardAsync("pending");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var busy = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, Day);
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);
        var waiting = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Rows, Day);

        using (var response = await client.PostAsync($"/api/v1/pipelines/runs/{waiting}/cancel", null))
        {
            var body = await response.ShouldBeJsonAsync(HttpStatusCode.Accepted);
            body.Str("status").ShouldBe("PENDING");
            body.GetProperty("cancel_requested").GetBoolean().ShouldBeTrue();
        }

        Api.Probe.For(org.Slug).Release();

        (await Api.WaitForRunAsync(client, busy)).Str("status").ShouldBe("COMPLETED");
        var cancelled = await Api.WaitForRunAsync(client, waiting);
        cancelled.Str("status").ShouldBe("CANCELLED", cancelled.ToString());
        cancelled.GetProperty("start_time").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.Null, "it never started");
        Api.Probe.For(org.Slug).CallsOf(waiting).ShouldBeEmpty();
        Api.TableRows(org.Slug).ShouldBeEmpty();
    }

    [Fact]
    public async Task Run_QueueFull_Is503WithRetryAdviceAndLeavesNoRun()
    {
        var org = await Api.OnboardAsync("full");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var busy = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, Day);
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);
        var queued = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Rows, Day);

        using (var response = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day))
        {
            var problem = await response.ShouldBeProblemAsync(HttpStatusCode.ServiceUnavailable);
            problem.Json.Str("detail").ShouldContain("queue is full");
            response.Headers.RetryAfter.ShouldNotBeNull("a 503 says when to retry").Delta.ShouldBe(TimeSpan.FromSeconds(5));
        }

        // Not admitted, so nothing is left behind: only the busy and the queued run exist (and onboarding's).
        Api.Factory.ControlPlane().Count("org_meta_pipeline_runs", "org_slug = $org AND pipeline_path LIKE 'testing/%'", ("$org", org.Slug)).ShouldBe(2);
        Api.Probe.For(org.Slug).Release();
        (await Api.WaitForRunAsync(client, busy)).Str("status").ShouldBe("COMPLETED");
        (await Api.WaitForRunAsync(client, queued)).Str("status").ShouldBe("COMPLETED");
    }

    [Fact]
    public async Task Run_RetryWithTheSameIdempotencyKeyAfterQueueFull_QueuesTheRun()
    {
        var org = await Api.OnboardAsync("fullkey");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var busy = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, Day);
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);
        var queued = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Rows, Day);
        var key = Guid.NewGuid().ToString("N");
        using (var full = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day, key))
        {
            await full.ShouldBeProblemAsync(HttpStatusCode.ServiceUnavailable);
        }

        Api.Probe.For(org.Slug).Release();
        (await Api.WaitForRunAsync(client, busy)).Str("status").ShouldBe("COMPLETED");
        (await Api.WaitForRunAsync(client, queued)).Str("status").ShouldBe("COMPLETED");

        // The 503 said "retry shortly"; a client retries with the same key, as idempotency keys are meant for.
        using var retry = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Day, key);

        // Regression: a refused run used to stay behind as FAILED/QueueFull holding the Idempotency-Key, so every retry
        // with that key replayed the never-started run instead of running the pipeline.
        var body = await retry.ReadBodyAsync();
        ((int)retry.StatusCode).ShouldBe(202, $"a retry after a 503 must be admitted; got {(int)retry.StatusCode}: {body.Text}");
        var run = await Api.WaitForRunAsync(client, body.Json.Str("pipeline_logging_id"));
        run.Str("status").ShouldBe("COMPLETED");
    }
}
