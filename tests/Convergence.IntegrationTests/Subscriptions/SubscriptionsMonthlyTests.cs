using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Subscriptions;

/// <summary><c>openai/subscriptions</c>: seats × price per month from the org's plans, exact, rerun-safe.</summary>
public sealed class SubscriptionsMonthlyTests : IAsyncLifetime
{
    private readonly PipelineHarness _harness = new();

    public async Task InitializeAsync() => await _harness.Factory.BootstrapAsync();

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    [Fact]
    public async Task Run_BillsHeldSeatsAtThePriceInEffectAndClearsAPlanGivenUp()
    {
        var org = await _harness.OnboardAsync("subs");
        using var client = _harness.Factory.OrgClient(org.ApiKey);
        var url = $"/api/v1/integrations/{org.Slug}/openai/subscriptions";
        (await client.GetAsync(url)).StatusCode.ShouldBe(HttpStatusCode.OK); // seeds the plans, 0 seats each
        // 12 Plus seats at 20 from the start; 3 Business (annual) seats at 25, repriced to 27.5 from 2025-12-01.
        (await client.PutAsJsonAsync($"{url}/chatgpt_plus", new { unit_price = 20m, seats = 12, effective_from = "1970-01-01" })).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await client.PutAsJsonAsync($"{url}/chatgpt_business_annual", new { unit_price = 25m, seats = 3, billing_period = "annual", effective_from = "1970-01-01" })).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await client.PutAsJsonAsync($"{url}/chatgpt_business_annual", new { unit_price = 27.5m, seats = 3, billing_period = "annual", effective_from = "2025-12-01" })).StatusCode.ShouldBe(HttpStatusCode.OK);

        var run = await _harness.RunAndWaitAsync(client, org.Slug, "openai/subscriptions", new { start_date = "2025-11-01", end_date = "2025-12-31" });

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        // November: 12 × 20 + 3 × 25 = 240 + 75 = 315; December: 240 + 3 × 27.5 = 322.5
        MonthTotals(org.Slug).ShouldBe(new Dictionary<string, decimal> { ["2025-11-01"] = 315m, ["2025-12-01"] = 322.5m });

        // Giving up Plus in December: the rerun writes 0 for it instead of leaving the old row.
        (await client.PutAsJsonAsync($"{url}/chatgpt_plus", new { unit_price = 20m, seats = 0, effective_from = "2025-12-01" })).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await _harness.RunAndWaitAsync(client, org.Slug, "openai/subscriptions", new { start_date = "2025-11-01", end_date = "2025-12-31" })).Str("status").ShouldBe("COMPLETED");
        MonthTotals(org.Slug).ShouldBe(new Dictionary<string, decimal> { ["2025-11-01"] = 315m, ["2025-12-01"] = 82.5m });
    }

    private Dictionary<string, decimal> MonthTotals(string slug) =>
        new ControlPlaneDb(_harness.Factory.OrgDatasetPath(slug)).Rows("SELECT month, cost FROM openai_subscriptions_monthly")
            .GroupBy(r => (string)r["month"]!)
            .ToDictionary(g => g.Key, g => g.Sum(r => decimal.Parse((string)r["cost"]!, CultureInfo.InvariantCulture)));
}
