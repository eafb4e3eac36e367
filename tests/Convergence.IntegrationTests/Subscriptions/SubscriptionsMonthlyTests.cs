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

    [Fact]
    public async Task Run_OnTheMonthsFirstDay_ChargesHeldSeatsInFocusAsARecurringPurchaseServedByTheDataApi()
    {
        var org = await _harness.OnboardAsync("subfocus");
        using var client = _harness.Factory.OrgClient(org.ApiKey);
        var url = $"/api/v1/integrations/{org.Slug}/openai/subscriptions";
        (await client.GetAsync(url)).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await client.PutAsJsonAsync($"{url}/chatgpt_plus", new { unit_price = 20m, seats = 12, effective_from = "1970-01-01" })).StatusCode.ShouldBe(HttpStatusCode.OK);

        var run = await _harness.RunAndWaitAsync(client, org.Slug, "openai/subscriptions", new { date = "2025-11-01" });

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var focus = _harness.Factory.Warehouse(org.Slug)
            .Rows("SELECT * FROM cost_focus_daily WHERE x_source_table = 'openai_subscriptions_monthly'").ShouldHaveSingleItem();
        focus["charge_date"].ShouldBe("2025-11-01");
        focus["charge_category"].ShouldBe("Purchase");
        focus["charge_frequency"].ShouldBe("Recurring");
        focus["service_name"].ShouldBe("ChatGPT");
        focus["sku_id"].ShouldBe("chatgpt_plus");
        focus["pricing_quantity"].ShouldBe("12");
        focus["consumed_quantity"].ShouldBeNull("a purchase has no consumed quantity");
        decimal.Parse((string)focus["billed_cost"]!, CultureInfo.InvariantCulture).ShouldBe(240m, "12 seats × 20");
        focus["charge_period_start"].ShouldBe("2025-11-01T00:00:00.0000000Z");
        focus["charge_period_end"].ShouldBe("2025-12-01T00:00:00.0000000Z");

        using var data = await client.GetAsync($"/api/v1/data/{org.Slug}/costs/daily?start_date=2025-11-01&end_date=2025-11-30&group_by=service");
        var body = await data.ShouldBeJsonAsync(HttpStatusCode.OK);
        var chatGpt = body.GetProperty("rows").EnumerateArray().Single(r => r.Str("service") == "ChatGPT");
        chatGpt.GetProperty("billed_cost").GetDecimal().ShouldBe(240m);
    }

    private Dictionary<string, decimal> MonthTotals(string slug) =>
        _harness.Factory.Warehouse(slug).Rows("SELECT month, cost FROM openai_subscriptions_monthly")
            .GroupBy(r => (string)r["month"]!)
            .ToDictionary(g => g.Key, g => g.Sum(r => decimal.Parse((string)r["cost"]!, CultureInfo.InvariantCulture)));
}
