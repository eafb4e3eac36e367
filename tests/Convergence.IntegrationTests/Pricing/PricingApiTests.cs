using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pricing;

/// <summary>The org price lists: seeded defaults, effective-dated changes, validation, reset and tenant isolation.</summary>
public sealed class PricingApiTests : IAsyncLifetime, IDisposable
{
    private readonly ConvergenceApiFactory _factory = new();

    public async Task InitializeAsync() => await _factory.BootstrapAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    [Theory]
    [InlineData("openai", "gpt-4o", 2.5)]
    [InlineData("anthropic", "claude-sonnet-4-5", 3)]
    [InlineData("deepseek", "deepseek-chat", 0.28)]
    public async Task List_FirstUse_SeedsTheShippedDefaults(string provider, string model, double input)
    {
        var org = await _factory.OnboardAsync("seed_" + provider);
        using var client = _factory.OrgClient(org.ApiKey);

        var prices = await ListAsync(client, org.Slug, provider);

        var row = prices.Single(p => p.Str("model_id") == model);
        row.GetProperty("input_per_mtok").GetDecimal().ShouldBe((decimal)input);
        row.Str("effective_from").ShouldBe("1970-01-01");
        row.TryGetProperty("cache_write_5m_per_mtok", out _).ShouldBeTrue("column names match the table's");
    }

    [Fact]
    public async Task Change_FromADay_ClosesTheOldPriceAndKeepsHistory()
    {
        var org = await _factory.OnboardAsync("change");
        using var client = _factory.OrgClient(org.ApiKey);

        using (var response = await client.PutAsJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/pricing/gpt-4o", new { input_per_mtok = 2.0m, output_per_mtok = 8m, effective_from = "2025-12-01" }))
        {
            (await response.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("effective_from").ShouldBe("2025-12-01");
        }

        var rows = (await ListAsync(client, org.Slug, "openai")).Where(p => p.Str("model_id") == "gpt-4o").ToList();
        rows.Select(r => (r.GetProperty("input_per_mtok").GetDecimal(), r.Str("effective_from"), r.GetProperty("effective_to").ValueKind == JsonValueKind.Null ? null : r.Str("effective_to")))
            .ShouldBe([(2.5m, "1970-01-01", "2025-11-30"), (2.0m, "2025-12-01", null)]);
    }

    [Fact]
    public async Task Add_InvalidValues_Are422AndChangeNothing()
    {
        var org = await _factory.OnboardAsync("invalid");
        using var client = _factory.OrgClient(org.ApiKey);
        var before = (await ListAsync(client, org.Slug, "openai")).Count;

        using (var negative = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/pricing", new { model_id = "m", input_per_mtok = -1m, output_per_mtok = 1m }))
        {
            var problem = await negative.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").TryGetProperty("input_per_mtok", out _).ShouldBeTrue();
        }

        using (var missing = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/pricing", new { model_id = "m", input_per_mtok = 1m }))
        {
            (await missing.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity)).Json.GetProperty("errors").TryGetProperty("output_per_mtok", out _).ShouldBeTrue();
        }

        using (var overlap = await client.PostJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/pricing", new { model_id = "gpt-4o", input_per_mtok = 1m, output_per_mtok = 1m, effective_from = "2025-01-01" }))
        {
            (await overlap.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity)).Json.GetProperty("errors").TryGetProperty("effective_from", out _).ShouldBeTrue();
        }

        using (var duplicate = await client.PostJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/pricing", new { model_id = "gpt-4o", input_per_mtok = 1m, output_per_mtok = 1m, effective_from = "1970-01-01" }))
        {
            await duplicate.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        }

        (await ListAsync(client, org.Slug, "openai")).Count.ShouldBe(before);
    }

    [Fact]
    public async Task AddDeleteAndReset_RoundTrip()
    {
        var org = await _factory.OnboardAsync("crud");
        using var client = _factory.OrgClient(org.ApiKey);
        var defaults = (await ListAsync(client, org.Slug, "deepseek")).Count;

        using (var added = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/deepseek/pricing", new { model_id = "my-model", input_per_mtok = 0.1m, output_per_mtok = 0.2m }))
        {
            await added.ShouldBeJsonAsync(HttpStatusCode.Created);
        }

        (await ListAsync(client, org.Slug, "deepseek")).Count.ShouldBe(defaults + 1);
        using (var deleted = await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/deepseek/pricing/deepseek-chat"))
        {
            (await deleted.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("rows_deleted").GetInt32().ShouldBe(1);
        }

        using (var missing = await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/deepseek/pricing/deepseek-chat"))
        {
            await missing.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using (var reset = await client.PostAsync($"/api/v1/integrations/{org.Slug}/deepseek/pricing/reset", null))
        {
            (await reset.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("prices").GetInt32().ShouldBe(defaults);
        }

        (await ListAsync(client, org.Slug, "deepseek")).Select(p => p.Str("model_id")).ShouldContain("deepseek-chat");
    }

    [Fact]
    public async Task OtherOrgsKey_Is403_AndUnknownProviderIs404()
    {
        var mine = await _factory.OnboardAsync("mine");
        var theirs = await _factory.OnboardAsync("theirs");
        using var client = _factory.OrgClient(mine.ApiKey);

        using (var cross = await client.GetAsync($"/api/v1/integrations/{theirs.Slug}/openai/pricing"))
        {
            await cross.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using (var crossWrite = await client.PostJsonAsync($"/api/v1/integrations/{theirs.Slug}/openai/pricing/reset", new { }))
        {
            await crossWrite.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using var unknown = await client.GetAsync($"/api/v1/integrations/{mine.Slug}/gcp_nope/pricing");
        await unknown.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    private static async Task<List<JsonElement>> ListAsync(HttpClient client, string org, string provider)
    {
        using var response = await client.GetAsync($"/api/v1/integrations/{org}/{provider}/pricing");
        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        return [.. body.GetProperty("prices").EnumerateArray()];
    }
}
