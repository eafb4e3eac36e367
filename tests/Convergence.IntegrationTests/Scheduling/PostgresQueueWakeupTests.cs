using Convergence.Api.Pipelines;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>
/// Two instances on one PostgreSQL control plane, polling the queue only once an hour: a run admitted on the instance
/// without workers is claimed at once by the other, woken by LISTEN/NOTIFY.
/// </summary>
public sealed class PostgresQueueWakeupTests
{
    [Fact]
    public async Task RunAdmittedOnApiOnlyInstance_IsClaimedByTheOtherInstanceWithoutWaitingForItsPoll()
    {
        var settings = PostgresServer.AppSettings("wake");
        settings["CONVERGENCE_QUEUE_POLL_SECONDS"] = "3600";
        settings["RATE_LIMIT_ENABLED"] = "false";
        try
        {
            await using var api = new ConvergenceApiFactory(settings)
            {
                ConfigFiles = TestPipelines.Files,
                ConfigureServices = services =>
                {
                    services.AddTestProcessors(new PipelineProbe());
                    foreach (var worker in services.Where(d => d.ImplementationType == typeof(PipelineWorkerService)).ToList())
                    {
                        services.Remove(worker);
                    }
                },
            };
            await using var workers = new PipelineHarness(settings: settings);
            await api.BootstrapAsync();
            workers.Factory.Services.GetRequiredService<RunQueueSignal>().Broadcasts.ShouldBeTrue();
            using (workers.Factory.CreateClient())
            {
                // Starts the worker instance's host (its dispatcher and listener).
            }

            var org = await api.OnboardAsync(PipelineHarness.NewSlug("wake"));
            workers.Probe.For(org.Slug).Rows = [PipelineHarness.Row("2025-11-20", "a", 1), PipelineHarness.Row("2025-11-20", "b", 2)];
            using var client = api.OrgClient(org.ApiKey);

            // Within PipelineHarness.Patience (30 s), far inside the hour the worker instance would otherwise sleep.
            var run = await workers.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-20" });

            run.Str("status").ShouldBe("COMPLETED", run.ToString());
            workers.TableRows(org.Slug).Count.ShouldBe(2);
        }
        finally
        {
            PostgresServer.DropDatabase(settings["CONVERGENCE_STORE_CONNECTION"]!);
            PostgresServer.DropDatabase(settings["CONVERGENCE_WAREHOUSE_CONNECTION"]!);
        }
    }
}
