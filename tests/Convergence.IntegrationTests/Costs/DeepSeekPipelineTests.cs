using System.Net;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Costs;

/// <summary>
/// <c>deepseek/usage_cost</c>: balance snapshot from the loopback fake, usage events priced, FOCUS rebuilt. Rows are read
/// through the app's warehouse, so each concrete class runs the same tests on its adapter.
/// </summary>
public abstract class DeepSeekPipelineTests(IReadOnlyDictionary<string, string?>? warehouse = null) : IAsyncLifetime
{
    private FakeProviders _providers = null!;
    private PipelineHarness _harness = null!;

    public async Task InitializeAsync()
    {
        _providers = await FakeProviders.StartAsync();
        _harness = new PipelineHarness(settings: new Dictionary<string, string?>(warehouse ?? new Dictionary<string, string?>()) { ["DEEPSEEK_BASE_URL"] = _providers.DeepSeekBase.AbsoluteUri });
        await _harness.Factory.BootstrapAsync();
    }

    public async Task DisposeAsync()
    {
        await _harness.DisposeAsync();
        await _providers.DisposeAsync();
    }

    [Fact]
    public async Task Run_SnapshotsTheBalanceInItsCurrencyAndPricesTheEvents()
    {
        var org = await _harness.OnboardAsync("ds");
        using var client = _harness.Factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/deepseek/setup", new { credential = FakeProviders.DeepSeekKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        // 2M uncached × 0.28 + 1M cached × 0.028 + 0.5M out × 0.42 = 0.56 + 0.028 + 0.21 = 0.798 USD
        (await client.PostJsonAsync($"/api/v1/usage/{org.Slug}/events", new
        {
            events = new[]
            {
                new { event_id = "d1", provider = "deepseek", model = "deepseek-chat", timestamp = "2025-11-25T09:00:00Z", uncached_input_tokens = 2_000_000L, cached_input_tokens = 1_000_000L, output_tokens = 500_000L },
            },
        })).StatusCode.ShouldBe(HttpStatusCode.OK);

        var run = await _harness.RunAndWaitAsync(client, org.Slug, "deepseek/usage_cost", new { date = "2025-11-25" });

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var db = new WarehouseRows(_harness.Factory, org.Slug);
        var balance = db.Rows("SELECT currency, total_balance, granted_balance, topped_up_balance, is_available FROM deepseek_balance_daily").ShouldHaveSingleItem();
        (balance["currency"], balance["total_balance"], balance["granted_balance"], balance["topped_up_balance"], balance["is_available"]).ShouldBe(("CNY", "110.00", "10.00", "100.00", 1L), "amounts kept exactly as DeepSeek wrote them");
        db.Rows("SELECT total_cost FROM deepseek_cost_daily").ShouldHaveSingleItem().Decimal("total_cost").ShouldBe(0.798m);
        db.Rows("SELECT billed_cost FROM cost_focus_daily WHERE x_provider = 'deepseek'").ShouldHaveSingleItem().Decimal("billed_cost").ShouldBe(0.798m);

        // A second run the same day replaces that day's snapshot instead of adding one.
        (await _harness.RunAndWaitAsync(client, org.Slug, "deepseek/usage_cost", new { date = "2025-11-25" })).Str("status").ShouldBe("COMPLETED");
        db.Count("deepseek_balance_daily").ShouldBe(1);
    }

    [Fact]
    public async Task Run_KeyRevoked_FailsMarksTheIntegrationInvalidAndWritesNothing()
    {
        var org = await _harness.OnboardAsync("ds_revoked");
        using var client = _harness.Factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/deepseek/setup", new { credential = FakeProviders.DeepSeekKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        _providers.Mode = "revoked";

        var run = await _harness.RunAndWaitAsync(client, org.Slug, "deepseek/usage_cost", new { date = "2025-11-25" });

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain("Authentication Fails");
        run.ToString().ShouldNotContain(FakeProviders.DeepSeekKey);
        var integration = await (await client.GetAsync($"/api/v1/integrations/{org.Slug}/deepseek")).ShouldBeJsonAsync(HttpStatusCode.OK);
        integration.Str("validation_status").ShouldBe("INVALID");
        var dataset = new WarehouseRows(_harness.Factory, org.Slug);
        (dataset.Tables().Contains("deepseek_balance_daily", StringComparer.Ordinal) ? dataset.Count("deepseek_balance_daily") : 0).ShouldBe(0);
    }
}

/// <summary>The DeepSeek pipeline tests on the embedded SQLite warehouse.</summary>
public sealed class SqliteDeepSeekPipelineTests() : DeepSeekPipelineTests();

/// <summary>The same tests, unchanged, with the control plane and the warehouse on PostgreSQL (fresh databases per test).</summary>
public sealed class PostgresDeepSeekPipelineTests() : DeepSeekPipelineTests(PostgresServer.AppSettings("deepseek"));
