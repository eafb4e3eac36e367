using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.Api.Pricing;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Subscriptions;

/// <summary>The org's OpenAI subscription plans: seeded defaults, effective-dated changes, validation, reset, seeding and tenant isolation.</summary>
public sealed class SubscriptionsApiTests : IAsyncLifetime, IDisposable
{
    private readonly ConvergenceApiFactory _factory = new();

    public async Task InitializeAsync() => await _factory.BootstrapAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task List_FirstUse_SeedsTheShippedPlans()
    {
        var org = await _factory.OnboardAsync("subs_seed");
        using var client = _factory.OrgClient(org.ApiKey);

        var plans = await ListAsync(client, org.Slug);

        var plus = plans.Single(p => p.Str("plan_name") == "chatgpt_plus");
        plus.GetProperty("unit_price").GetDecimal().ShouldBe(20m);
        plus.Str("currency").ShouldBe("USD");
        plus.Str("billing_period").ShouldBe("monthly");
        plus.GetProperty("seats").GetInt64().ShouldBe(0, "the defaults list plans; the org sets the seats it holds");
        plans.Single(p => p.Str("plan_name") == "chatgpt_pro").GetProperty("unit_price").GetDecimal().ShouldBe(200m);
        plans.Single(p => p.Str("plan_name") == "chatgpt_enterprise").GetProperty("unit_price").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact]
    public async Task Change_FromADay_ClosesTheOldRowAndKeepsHistory()
    {
        var org = await _factory.OnboardAsync("subs_change");
        using var client = _factory.OrgClient(org.ApiKey);

        using (var response = await client.PutAsJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/subscriptions/chatgpt_plus", new { unit_price = 22m, seats = 5, effective_from = "2026-01-01" }))
        {
            var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.Str("effective_from").ShouldBe("2026-01-01");
            body.GetProperty("seats").GetInt64().ShouldBe(5);
            body.Str("display_name").ShouldBe("ChatGPT Plus", "a change keeps the plan's name unless it gives one");
        }

        var rows = (await ListAsync(client, org.Slug)).Where(p => p.Str("plan_name") == "chatgpt_plus").ToList();
        rows.Select(r => (r.GetProperty("unit_price").GetDecimal(), r.Str("effective_from"), r.GetProperty("effective_to").ValueKind == JsonValueKind.Null ? null : r.Str("effective_to")))
            .ShouldBe([(20m, "1970-01-01", "2025-12-31"), (22m, "2026-01-01", null)]);
    }

    [Fact]
    public async Task Change_UnknownPlan_Is404()
    {
        var org = await _factory.OnboardAsync("subs_unknown");
        using var client = _factory.OrgClient(org.ApiKey);

        using (var put = await client.PutAsJsonAsync($"/api/v1/integrations/{org.Slug}/openai/subscriptions/no_such_plan", new { unit_price = 1m }))
        {
            await put.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using var delete = await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/openai/subscriptions/no_such_plan");
        await delete.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("unit_price", """{"plan_name":"p1","unit_price":-1}""")]
    [InlineData("unit_price", """{"plan_name":"p1"}""")]
    [InlineData("currency", """{"plan_name":"p1","unit_price":1,"currency":"usd"}""")]
    [InlineData("currency", """{"plan_name":"p1","unit_price":1,"currency":"DOLLARS"}""")]
    [InlineData("billing_period", """{"plan_name":"p1","unit_price":1,"billing_period":"weekly"}""")]
    [InlineData("seats", """{"plan_name":"p1","unit_price":1,"seats":-1}""")]
    [InlineData("plan_name", """{"plan_name":"Not A Slug","unit_price":1}""")]
    [InlineData("effective_to", """{"plan_name":"p1","unit_price":1,"effective_from":"2026-02-01","effective_to":"2026-01-01"}""")]
    [InlineData("effective_from", """{"plan_name":"chatgpt_plus","unit_price":1,"effective_from":"2025-01-01"}""")]
    public async Task Add_InvalidValues_Are422NamingTheFieldAndChangeNothing(string field, string json)
    {
        var org = await _factory.OnboardAsync("subs_invalid");
        using var client = _factory.OrgClient(org.ApiKey);
        var before = await ListAsync(client, org.Slug);

        using (var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json"))
        using (var response = await client.PostAsync($"/api/v1/integrations/{org.Slug}/openai/subscriptions", content))
        {
            var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").TryGetProperty(field, out _).ShouldBeTrue(problem.Text);
        }

        (await ListAsync(client, org.Slug)).Count.ShouldBe(before.Count);
    }

    [Fact]
    public async Task Add_SamePlanAndDay_Is409()
    {
        var org = await _factory.OnboardAsync("subs_dup");
        using var client = _factory.OrgClient(org.ApiKey);

        using var duplicate = await client.PostJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/subscriptions", new { plan_name = "chatgpt_plus", unit_price = 20m, effective_from = "1970-01-01" });

        await duplicate.ShouldBeProblemAsync(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task AddDeleteAndReset_RoundTrip()
    {
        var org = await _factory.OnboardAsync("subs_crud");
        using var client = _factory.OrgClient(org.ApiKey);
        var defaults = (await ListAsync(client, org.Slug)).Count;

        using (var added = await client.PostJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/subscriptions",
            new { plan_name = "chatgpt_enterprise_eu", display_name = "Enterprise (EU contract)", unit_price = 55.5m, currency = "EUR", billing_period = "annual", seats = 150 }))
        {
            var body = await added.ShouldBeJsonAsync(HttpStatusCode.Created);
            added.Headers.Location!.ToString().ShouldEndWith("/openai/subscriptions/chatgpt_enterprise_eu");
            body.Str("currency").ShouldBe("EUR");
            body.GetProperty("seats").GetInt64().ShouldBe(150);
        }

        (await ListAsync(client, org.Slug)).Count.ShouldBe(defaults + 1);
        using (var deleted = await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/openai/subscriptions/chatgpt_plus"))
        {
            (await deleted.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("rows_deleted").GetInt32().ShouldBe(1);
        }

        using (var reset = await client.PostAsync($"/api/v1/integrations/{org.Slug}/openai/subscriptions/reset", null))
        {
            (await reset.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("subscriptions").GetInt32().ShouldBe(defaults);
        }

        var names = (await ListAsync(client, org.Slug)).Select(p => p.Str("plan_name")).ToList();
        names.ShouldContain("chatgpt_plus");
        names.ShouldNotContain("chatgpt_enterprise_eu");
    }

    [Fact]
    public async Task SeedIfAbsent_SeedsAnAbsentTableButNeverOverwritesEdits()
    {
        var org = await _factory.OnboardAsync("subs_setup");
        using var client = _factory.OrgClient(org.ApiKey);
        var service = _factory.Services.GetRequiredService<SubscriptionTableService>();

        var seeded = await service.SeedIfAbsentAsync(org.Slug, CancellationToken.None);
        seeded.ShouldBeGreaterThan(0);

        using (var response = await client.PutAsJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/subscriptions/chatgpt_pro", new { unit_price = 180m, effective_from = "1970-01-01" }))
        {
            await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        }

        (await service.SeedIfAbsentAsync(org.Slug, CancellationToken.None)).ShouldBe(0);
        (await ListAsync(client, org.Slug)).Single(p => p.Str("plan_name") == "chatgpt_pro").GetProperty("unit_price").GetDecimal().ShouldBe(180m);
        (await ListAsync(client, org.Slug)).Count.ShouldBe(seeded);
    }

    [Fact]
    public async Task OtherOrgsKey_Is403()
    {
        var mine = await _factory.OnboardAsync("subs_mine");
        var theirs = await _factory.OnboardAsync("subs_theirs");
        using var client = _factory.OrgClient(mine.ApiKey);

        using (var cross = await client.GetAsync($"/api/v1/integrations/{theirs.Slug}/openai/subscriptions"))
        {
            await cross.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using (var crossWrite = await client.PutAsJsonAsync($"/api/v1/integrations/{theirs.Slug}/openai/subscriptions/chatgpt_plus", new { unit_price = 0m }))
        {
            await crossWrite.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using var crossReset = await client.PostJsonAsync($"/api/v1/integrations/{theirs.Slug}/openai/subscriptions/reset", new { });
        await crossReset.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
    }

    private static async Task<List<JsonElement>> ListAsync(HttpClient client, string org)
    {
        using var response = await client.GetAsync($"/api/v1/integrations/{org}/openai/subscriptions");
        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        return [.. body.GetProperty("subscriptions").EnumerateArray()];
    }
}
