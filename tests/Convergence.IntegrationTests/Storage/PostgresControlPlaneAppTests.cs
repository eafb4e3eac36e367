using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Convergence.IntegrationTests.Storage;

/// <summary>The whole service with CONVERGENCE_STORE=postgres (the warehouse stays SQLite): bootstrap, onboard, read back.</summary>
public sealed class PostgresControlPlaneAppTests
{
    [Fact]
    public async Task Api_WithPostgresStore_BootstrapsOnboardsAndReadsTheOrgBack()
    {
        var connection = PostgresServer.CreateDatabase("cpapp");
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?>
        {
            ["CONVERGENCE_STORE"] = "postgres",
            ["CONVERGENCE_STORE_CONNECTION"] = connection,
            ["CONVERGENCE_QUEUE_POLL_SECONDS"] = "3600",
        });
        factory.Services.GetRequiredService<IControlPlaneStore>().Kind.ShouldBe("postgres");

        var bootstrap = await factory.BootstrapAsync();
        bootstrap.GetProperty("dataset_created").GetBoolean().ShouldBeTrue();
        var acme = await factory.OnboardAsync("pg_acme");

        using (var org = factory.OrgClient(acme.ApiKey))
        using (var response = await org.GetAsync("/api/v1/organizations/pg_acme"))
        {
            response.StatusCode.ShouldBe(HttpStatusCode.OK);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            body.GetRawText().ShouldContain("pg_acme");
        }

        using (var org = factory.OrgClient(acme.ApiKey))
        using (var response = await org.GetAsync("/api/v1/pipelines/runs"))
        {
            response.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        // The rows are in PostgreSQL, not in a SQLite file of the data folder.
        File.Exists(factory.CentralDatabasePath).ShouldBeFalse();
        await using var database = new NpgsqlConnection(connection);
        await database.OpenAsync();
        await using var count = new NpgsqlCommand("SELECT COUNT(*) FROM organizations.org_profiles WHERE org_slug = 'pg_acme'", database);
        ((long)(await count.ExecuteScalarAsync())!).ShouldBe(1);
    }

    [Fact]
    public async Task Pipeline_WithPostgresStore_QueuesRunsAndRecordsRunStepsAndDqResults()
    {
        await using var harness = new PipelineHarness(settings: new Dictionary<string, string?>
        {
            ["CONVERGENCE_STORE"] = "postgres",
            ["CONVERGENCE_STORE_CONNECTION"] = PostgresServer.CreateDatabase("cprun"),
        });
        await harness.Factory.BootstrapAsync();
        var org = await harness.OnboardAsync("pgrun");
        using var client = harness.Factory.OrgClient(org.ApiKey);
        harness.Probe.For(org.Slug).Rows = [PipelineHarness.Row("2025-11-20", "b", null), PipelineHarness.Row("2025-11-20", "c", 2)];

        var run = await harness.RunAndWaitAsync(client, org.Slug, TestPipelines.DqWarn, new { date = "2025-11-20" });

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        harness.TableRows(org.Slug).Count.ShouldBe(2);
        var id = run.Str("pipeline_logging_id");
        var steps = await PipelineHarness.GetStepsAsync(client, id);
        steps.GetProperty("steps").EnumerateArray().ShouldHaveSingleItem().Str("status").ShouldBe("COMPLETED");
        var dq = steps.GetProperty("dq_results").EnumerateArray().ToDictionary(d => d.Str("check_name"));
        dq["not_null_amount"].Str("status").ShouldBe("FAILED");
        dq["not_null_amount"].GetProperty("failing_sample").EnumerateArray().ShouldHaveSingleItem().Str("id").ShouldBe("b");

        using var response = await client.GetAsync("/api/v1/pipelines/runs?limit=10");
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).ShouldContain(id);
        File.Exists(harness.Factory.CentralDatabasePath).ShouldBeFalse();
    }
}
