using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Bootstrap;

public sealed class BootstrapTests
{
    private const string Route = "/api/v1/admin/bootstrap";

    private static readonly string[] CentralTables =
    [
        "org_api_keys", "org_audit_logs", "org_integration_credentials", "org_meta_dq_results", "org_meta_pipeline_runs", "org_meta_step_logs",
        "org_pipeline_configs", "org_pipeline_execution_queue", "org_profiles", "org_scheduled_pipeline_runs", "org_subscriptions", "org_usage_quotas",
    ];

    [Fact]
    public async Task Bootstrap_FirstCall_CreatesDatasetAndAllTwelveTables()
    {
        await using var factory = new ConvergenceApiFactory();

        var body = await factory.BootstrapAsync();

        body.Str("status").ShouldBe("SUCCESS");
        body.GetProperty("dataset_created").GetBoolean().ShouldBeTrue();
        Names(body, "tables_created").ShouldBe(CentralTables, ignoreOrder: true);
        body.GetProperty("tables_existing").GetArrayLength().ShouldBe(0);
        factory.ControlPlane().Tables().ShouldBe(CentralTables, ignoreOrder: true);
    }

    [Fact]
    public async Task Bootstrap_SecondCall_CreatesNothingAndReportsTwelveExisting()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var body = await factory.BootstrapAsync();

        body.GetProperty("dataset_created").GetBoolean().ShouldBeFalse();
        body.GetProperty("tables_created").GetArrayLength().ShouldBe(0);
        Names(body, "tables_existing").ShouldBe(CentralTables, ignoreOrder: true);
    }

    [Fact]
    public async Task Bootstrap_NoBodyAtAll_IsAccepted()
    {
        await using var factory = new ConvergenceApiFactory();
        using var client = factory.RootClient();

        using var response = await client.PostAsync(Route, content: null);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("tables_created").GetArrayLength().ShouldBe(12);
    }

    [Fact]
    public async Task Bootstrap_ForceRecreateTables_RecreatesAllTablesAndRemovesRows()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");

        var body = await factory.BootstrapAsync(new { force_recreate_tables = true });

        body.GetProperty("dataset_created").GetBoolean().ShouldBeFalse();
        Names(body, "tables_created").ShouldBe(CentralTables, ignoreOrder: true);
        body.GetProperty("tables_existing").GetArrayLength().ShouldBe(0);
        factory.ControlPlane().Count("org_profiles").ShouldBe(0);
        factory.ControlPlane().Count("org_api_keys").ShouldBe(0);
        using var client = factory.RootClient();
        using var response = await client.GetAsync("/api/v1/organizations/acme");
        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    /// <remarks>
    /// Regression: SqliteDatasetFiles.Delete once cleared only the Mode=ReadWrite connection pool, so a pooled
    /// Mode=ReadWriteCreate connection kept writing the "recreated" tables into the deleted file and every later call
    /// answered 500 until a restart.
    /// </remarks>
    [Fact]
    public async Task Bootstrap_ForceRecreateDataset_RecreatesDatasetAndRemovesRows()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");

        var body = await factory.BootstrapAsync(new { force_recreate_dataset = true });

        body.GetProperty("dataset_created").GetBoolean().ShouldBeTrue();
        Names(body, "tables_created").ShouldBe(CentralTables, ignoreOrder: true);
        factory.ControlPlane().Exists.ShouldBeTrue();
        factory.ControlPlane().Tables().ShouldBe(CentralTables, ignoreOrder: true);
        factory.ControlPlane().Count("org_profiles").ShouldBe(0);
        using var root = factory.RootClient();
        using (var response = await root.GetAsync("/api/v1/organizations/acme"))
        {
            await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        // The old key died with its row.
        using var org = factory.OrgClient(acme.ApiKey);
        using (var response = await org.GetAsync("/api/v1/organizations/acme"))
        {
            await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        }
    }

    [Fact]
    public async Task Bootstrap_WithOrgKey_Is403()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var client = factory.OrgClient(acme.ApiKey);

        using var response = await client.PostJsonAsync(Route, new { });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        problem.Text.ShouldNotContain(acme.ApiKey);
    }

    [Fact]
    public async Task Bootstrap_WithoutKey_Is401AndCreatesNothing()
    {
        await using var factory = new ConvergenceApiFactory();
        using var client = factory.AnonymousClient();

        using var response = await client.PostJsonAsync(Route, new { });

        await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        factory.ControlPlane().Exists.ShouldBeFalse();
    }

    [Fact]
    public async Task Bootstrap_Run_IsRecordedWithStepsAndAudit()
    {
        await using var factory = new ConvergenceApiFactory();
        using var client = factory.RootClient();

        using var response = await client.SendAsync(HttpMethod.Post, Route, new Dictionary<string, string> { ["X-Request-ID"] = "boot-req-1" }, JsonContent.Create(new { }));
        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);

        var runId = body.Str("pipeline_logging_id");
        Guid.TryParse(runId, out _).ShouldBeTrue(runId);
        var db = factory.ControlPlane();
        var run = db.Rows("SELECT * FROM org_meta_pipeline_runs WHERE pipeline_logging_id = $id", ("$id", runId)).ShouldHaveSingleItem();
        run["status"].ShouldBe("COMPLETED");
        run["pipeline_id"].ShouldBe("platform-bootstrap");
        run["request_id"].ShouldBe("boot-req-1");
        var step = db.Rows("SELECT * FROM org_meta_step_logs WHERE pipeline_logging_id = $id", ("$id", runId)).ShouldHaveSingleItem();
        step["step_id"].ShouldBe("create_central_dataset");
        step["status"].ShouldBe("COMPLETED");
        step["rows_processed"].ShouldBe(12L);
        var audit = db.Rows("SELECT * FROM org_audit_logs WHERE action = 'platform.bootstrap'").ShouldHaveSingleItem();
        audit["outcome"].ShouldBe("SUCCESS");
        audit["actor_type"].ShouldBe("ROOT");
        audit["request_id"].ShouldBe("boot-req-1");
        using var details = JsonDocument.Parse((string)audit["details"]!);
        details.RootElement.Str("pipeline_logging_id").ShouldBe(runId);
    }

    private static string[] Names(JsonElement body, string property) =>
        [.. body.GetProperty(property).EnumerateArray().Select(e => e.GetString()!)];
}
