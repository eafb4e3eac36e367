using System.Diagnostics;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>Stopping the service closes the runs it was executing instead of leaving them RUNNING.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task StopApplication_RunInFlight_IsClosedNotLeftRunning()
    {
        await using var api = new PipelineHarness();
        await api.Factory.BootstrapAsync();
        var org = await api.OnboardAsync("shutdown");
        using var client = api.Factory.OrgClient(org.ApiKey);
        var id = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, new { date = "2025-11-20" });
        await api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);

        api.Factory.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();

        // The host disposes its services as it stops: read the files, which stay until the factory is disposed.
        var db = api.Factory.ControlPlane();
        var elapsed = Stopwatch.StartNew();
        string? status;
        while ((status = (string?)db.Scalar("SELECT status FROM org_meta_pipeline_runs WHERE pipeline_logging_id = $id", ("$id", id))) is "RUNNING" or "PENDING")
        {
            elapsed.Elapsed.ShouldBeLessThan(PipelineHarness.Patience, "the run is still open after the service stopped");
            await Task.Delay(10);
        }

        status.ShouldBeOneOf("CANCELLED", "FAILED");
        var open = db.Rows("SELECT step_id, status FROM org_meta_step_logs WHERE pipeline_logging_id = $id AND status IN ('RUNNING', 'PENDING')", ("$id", id));
        open.ShouldBeEmpty(string.Join(", ", open.Select(r => $"{r["step_id"]}={r["status"]}")));
    }
}
