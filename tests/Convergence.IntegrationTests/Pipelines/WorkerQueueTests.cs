using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>The run queue and its single worker: runs wait PENDING and can be cancelled before they start.</summary>
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
}
