using System.Net;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using static Convergence.IntegrationTests.Support.PipelineHarness;

namespace Convergence.IntegrationTests.Warehouse;

/// <summary>
/// The API on a PostgreSQL warehouse end to end: gcp/billing loads the sample export (binary COPY through
/// replace_partitions), focus.normalize reads the slice back with date parameters, and the data API sums it; the example
/// dry run takes its query_postgres.
/// </summary>
public sealed class PostgresWarehousePipelineTests(PostgresWarehousePipelineTests.Fixture fixture) : IClassFixture<PostgresWarehousePipelineTests.Fixture>
{
    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task GcpBilling_LoadsNormalizesAndReports_AndARerunKeepsTheSameRows()
    {
        var org = await Api.OnboardAsync("pgwh");
        var client = Api.Factory.OrgClient(org.ApiKey);
        var folder = Path.Combine(Api.Factory.DataDirectory, "imports", org.Slug);
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "gcp", "gcp_billing_export_sample.csv"), Path.Combine(folder, "sample.csv"));
        var parameters = new Dictionary<string, string> { ["source_uri"] = $"{org.Slug}/sample.csv", ["start_date"] = "2020-11-08", ["end_date"] = "2020-11-11" };

        var run = await Api.RunAndWaitAsync(client, org.Slug, "gcp/billing", parameters);
        var rerun = await Api.RunAndWaitAsync(client, org.Slug, "gcp/billing", parameters);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        rerun.Str("status").ShouldBe("COMPLETED", rerun.ToString());
        var warehouse = Api.Factory.Services.GetRequiredService<IWarehouse>();
        warehouse.Kind.ShouldBe("postgres");
        var dataset = DatasetRef.ForOrg(OrgSlug.From(org.Slug), DeploymentEnvironment.Development);
        var totals = (await warehouse.QueryAsync(
            dataset,
            new SqlQuery("SELECT COUNT(*) AS n, SUM(cost) AS cost, SUM(cost_after_credits) AS net, MIN(usage_date) AS first_day FROM gcp_billing_daily_raw", new Dictionary<string, object?>()),
            1,
            CancellationToken.None)).ShouldHaveSingleItem();
        (totals.Long("n"), totals.Decimal("cost"), totals.Decimal("net"), totals.Date("first_day")).ShouldBe((25L, 0.000032m, 0m, new DateOnly(2020, 11, 8)));
        (await warehouse.CountRowsAsync(dataset, "cost_focus_daily", CancellationToken.None)).ShouldBe(25);

        var costs = await (await client.GetAsync($"/api/v1/data/{org.Slug}/costs/daily?start_date=2020-11-01&end_date=2020-11-30&group_by=provider")).ShouldBeJsonAsync(HttpStatusCode.OK);
        var gcp = costs.GetProperty("rows").EnumerateArray().ShouldHaveSingleItem();
        (gcp.Str("provider"), gcp.GetProperty("billed_cost").GetDecimal(), gcp.GetProperty("effective_cost").GetDecimal()).ShouldBe(("gcp", 0.000032m, 0m));
    }

    [Fact]
    public async Task ExampleDryrun_RunsItsPostgresQuery_AndARerunReplacesTheSlice()
    {
        var org = await Api.OnboardAsync("pgdry");
        var client = Api.Factory.OrgClient(org.ApiKey);
        var parameters = new Dictionary<string, string> { ["start_date"] = "2025-11-18", ["end_date"] = "2025-11-20" };

        var run = await Api.RunAndWaitAsync(client, org.Slug, "gcp/example/dryrun", parameters);
        var rerun = await Api.RunAndWaitAsync(client, org.Slug, "gcp/example/dryrun", parameters);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        rerun.Str("status").ShouldBe("COMPLETED", rerun.ToString());
        var rows = await Api.Factory.Services.GetRequiredService<IWarehouse>().QueryAsync(
            DatasetRef.ForOrg(OrgSlug.From(org.Slug), DeploymentEnvironment.Development),
            new SqlQuery("SELECT run_date, org_slug FROM onboarding_validation_test WHERE run_date >= @start AND run_date <= @end ORDER BY run_date", new Dictionary<string, object?> { ["start"] = new DateOnly(2025, 11, 18), ["end"] = new DateOnly(2025, 11, 20) }),
            100,
            CancellationToken.None);
        rows.Select(r => $"{r.Date("run_date"):MM-dd} {r.Text("org_slug")}").ShouldBe([$"11-18 {org.Slug}", $"11-19 {org.Slug}", $"11-20 {org.Slug}"]);
    }

    public sealed class Fixture() : PipelineFixture(manualClock: false, new Dictionary<string, string?>
    {
        ["CONVERGENCE_WAREHOUSE"] = "postgres",
        ["CONVERGENCE_WAREHOUSE_CONNECTION"] = PostgresServer.CreateDatabase("pipelinewarehouse"),
    });
}
