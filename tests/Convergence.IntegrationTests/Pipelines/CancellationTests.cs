using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>POST /runs/{id}/cancel stops a running run at its next cancellation check; finished runs cannot be cancelled.</summary>
public sealed class CancellationTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task Cancel_RunningRun_BecomesCancelledWithItsStepCancelledAndLaterStepsSkipped()
    {
        var org = await Api.OnboardAsync("cancel");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var id = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block);
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);

        using var response = await client.PostAsync($"/api/v1/pipelines/runs/{id}/cancel", null);

        var accepted = await response.ShouldBeJsonAsync(HttpStatusCode.Accepted);
        accepted.Str("pipeline_logging_id").ShouldBe(id);
        accepted.GetProperty("cancel_requested").GetBoolean().ShouldBeTrue();
        var run = await Api.WaitForRunAsync(client, id);
        run.Str("status").ShouldBe("CANCELLED", run.ToString());
        run.Str("error_class").ShouldBe("Cancelled");
        run.GetProperty("cancel_requested").GetBoolean().ShouldBeTrue();
        var steps = (await PipelineHarness.GetStepsAsync(client, id)).GetProperty("steps").EnumerateArray().ToDictionary(s => s.Str("step_id"));
        steps["wait"].Str("status").ShouldBe("CANCELLED");
        steps["after"].Str("status").ShouldBe("SKIPPED");
        steps["last"].Str("status").ShouldBe("SKIPPED");
        Api.Probe.For(org.Slug).CallsOf(id).Select(c => c.StepId).ShouldBe(["wait"], "nothing runs after a cancel");
    }

    [Fact]
    public async Task Cancel_FinishedRun_Is409AndChangesNothing()
    {
        var org = await Api.OnboardAsync("cancel");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var completed = (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-20" })).Str("pipeline_logging_id");
        var failed = (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Terminal, new { date = "2025-11-20" })).Str("pipeline_logging_id");

        foreach (var id in new[] { completed, failed })
        {
            using var response = await client.PostAsync($"/api/v1/pipelines/runs/{id}/cancel", null);

            var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
            problem.Json.Str("detail").ShouldContain(id);
            var stored = (await Api.Store.FindRunAsync(id, null, CancellationToken.None)).ShouldNotBeNull();
            stored.CancelRequestedAt.ShouldBeNull();
        }

        (await Api.Store.FindRunAsync(completed, null, CancellationToken.None))!.Status.ShouldBe("COMPLETED");
        (await Api.Store.FindRunAsync(failed, null, CancellationToken.None))!.Status.ShouldBe("FAILED");
    }

    [Fact]
    public async Task Cancel_CancelledRunAgain_Is409()
    {
        var org = await Api.OnboardAsync("cancel");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var id = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block);
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);
        using (var first = await client.PostAsync($"/api/v1/pipelines/runs/{id}/cancel", null))
        {
            await first.ShouldBeJsonAsync(HttpStatusCode.Accepted);
        }

        (await Api.WaitForRunAsync(client, id)).Str("status").ShouldBe("CANCELLED");

        using var again = await client.PostAsync($"/api/v1/pipelines/runs/{id}/cancel", null);
        await again.ShouldBeProblemAsync(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task Cancel_UnknownRun_Is404()
    {
        var org = await Api.OnboardAsync("cancel");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await client.PostAsync($"/api/v1/pipelines/runs/{Guid.CreateVersion7()}/cancel", null);
        using var tooLong = await client.PostAsync($"/api/v1/pipelines/runs/{new string('a', 300)}/cancel", null);

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        await tooLong.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }
}
