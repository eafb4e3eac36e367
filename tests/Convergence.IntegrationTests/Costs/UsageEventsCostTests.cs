using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Costs;

/// <summary>
/// Usage events → <c>usage/events_cost</c> → per-provider cost tables → <c>cost_focus_daily</c> → the data API, with
/// costs computed by hand from the shipped seed prices (USD per million tokens). Rows are read through the app's
/// warehouse, so each concrete class runs the same tests on its adapter.
/// </summary>
public abstract class UsageEventsCostTests(IReadOnlyDictionary<string, string?>? settings = null) : IAsyncLifetime
{
    private const string Day1 = "2025-11-24";
    private const string Day2 = "2025-11-25";
    private readonly PipelineHarness _harness = new(settings: settings);

    public async Task InitializeAsync() => await _harness.Factory.BootstrapAsync();

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    /// <summary>
    /// gpt-4o (seed: input 2.5, cached 1.25, output 10, batch 1.25/5; from Day2 changed to 2.0, cached 1.0, output 8):
    ///   e1+e2 Day1 p1/k1: 1.5M uncached × 2.5 + 0.2M cached × 1.25 + 0.15M out × 10 = 3.75 + 0.25 + 1.5 = 5.50
    ///   e3 Day1 gpt-4o-2024-08-06 batch: 1M × 1.25 + 1M × 5 = 6.25 (list 2.5 + 10 = 12.50)
    ///   e7 Day2 (new price): 1M × 2.0 + 0.1M × 8 = 2.80
    /// claude-sonnet-4-5 (3, read 0.3, write 5m 3.75, 1h 6, out 15), e4 Day2:
    ///   0.1M × 3 + 1M × 0.3 + 0.2M × 3.75 + 0.1M × 6 + 0.02M × 15 = 0.3 + 0.3 + 0.75 + 0.6 + 0.3 = 2.25
    /// deepseek-chat (0.28, cached 0.028, out 0.42), e5 Day2: 2M × 0.28 + 1M × 0.028 + 0.5M × 0.42 = 0.56 + 0.028 + 0.21 = 0.798
    /// e6 Day2 my-finetune-x: unknown model → kept unpriced, not in FOCUS.
    /// </summary>
    private static object[] Events() =>
    [
        Event("e1", "openai", "gpt-4o", Day1, uncached: 1_000_000, cached: 200_000, output: 100_000),
        Event("e2", "openai", "gpt-4o", Day1, uncached: 500_000, output: 50_000),
        Event("e3", "openai", "gpt-4o-2024-08-06", Day1, uncached: 1_000_000, output: 1_000_000, batch: true),
        Event("e4", "anthropic", "claude-sonnet-4-5", Day2, uncached: 100_000, cached: 1_000_000, write5m: 200_000, write1h: 100_000, output: 20_000),
        Event("e5", "deepseek", "deepseek-chat", Day2, uncached: 2_000_000, cached: 1_000_000, output: 500_000),
        Event("e6", "openai", "my-finetune-x", Day2, uncached: 10, output: 10),
        Event("e7", "openai", "gpt-4o", Day2, uncached: 1_000_000, output: 100_000),
    ];

    private static object Event(string id, string provider, string model, string day, long uncached = 0, long cached = 0, long write5m = 0, long write1h = 0, long output = 0, bool batch = false) => new Dictionary<string, object?>
    {
        ["event_id"] = id,
        ["provider"] = provider,
        ["model"] = model,
        ["timestamp"] = $"{day}T12:00:00Z",
        ["project_id"] = "p1",
        ["api_key_id"] = "k1",
        ["batch"] = batch,
        ["uncached_input_tokens"] = uncached,
        ["cached_input_tokens"] = cached,
        ["cache_write_5m_tokens"] = write5m,
        ["cache_write_1h_tokens"] = write1h,
        ["output_tokens"] = output,
    };

    [Fact]
    public async Task Events_ArePricedPerDayIntoCostTablesFocusAndTheDataApi_AndRerunsChangeNothing()
    {
        var org = await _harness.OnboardAsync("usage");
        using var client = _harness.Factory.OrgClient(org.ApiKey);
        (await client.PutAsJsonAsync(
            $"/api/v1/integrations/{org.Slug}/openai/pricing/gpt-4o",
            new { input_per_mtok = 2.0m, cached_input_per_mtok = 1.0m, output_per_mtok = 8m, batch_input_per_mtok = 1.0m, batch_output_per_mtok = 4m, effective_from = Day2 }))
            .StatusCode.ShouldBe(HttpStatusCode.OK);

        var posted = await (await client.PostJsonAsync($"/api/v1/usage/{org.Slug}/events", new { events = Events() })).ShouldBeJsonAsync(HttpStatusCode.OK);
        (posted.GetProperty("accepted").GetInt32(), posted.GetProperty("duplicates").GetInt32()).ShouldBe((7, 0));

        var run = await _harness.RunAndWaitAsync(client, org.Slug, "usage/events_cost", new { start_date = Day1, end_date = Day2 });
        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        await AssertCostsAsync(client, org.Slug);

        // Re-sending the same events and re-running change nothing.
        var again = await (await client.PostJsonAsync($"/api/v1/usage/{org.Slug}/events", new { events = Events() })).ShouldBeJsonAsync(HttpStatusCode.OK);
        (again.GetProperty("accepted").GetInt32(), again.GetProperty("duplicates").GetInt32()).ShouldBe((0, 7));
        (await _harness.RunAndWaitAsync(client, org.Slug, "usage/events_cost", new { start_date = Day1, end_date = Day2 })).Str("status").ShouldBe("COMPLETED");
        await AssertCostsAsync(client, org.Slug);
    }

    private async Task AssertCostsAsync(HttpClient client, string slug)
    {
        var db = new WarehouseRows(_harness.Factory, slug);
        var openai = db.Rows("SELECT usage_date, model, batch, total_cost, list_cost, priced, unpriced_reason, price_model_id, requests, source FROM openai_cost_daily ORDER BY usage_date, model");
        openai.Select(r => ((string)r["usage_date"]!, (string)r["model"]!, decimal.Parse((string)r["total_cost"]!, System.Globalization.CultureInfo.InvariantCulture), r["unpriced_reason"] as string))
            .ShouldBe([
                (Day1, "gpt-4o", 5.50m, null),
                (Day1, "gpt-4o-2024-08-06", 6.25m, null),
                (Day2, "gpt-4o", 2.80m, null),
                (Day2, "my-finetune-x", 0m, "unknown_model"),
            ]);
        openai[0]["requests"].ShouldBe(2L);
        openai[1]["price_model_id"].ShouldBe("gpt-4o-2024-08-06", "the seed lists the dated variant itself");
        openai[2]["price_model_id"].ShouldBe("gpt-4o");
        decimal.Parse((string)openai[1]["list_cost"]!, System.Globalization.CultureInfo.InvariantCulture).ShouldBe(12.50m);
        openai.ShouldAllBe(r => (string)r["source"]! == "events");
        db.Count("cost_focus_daily").ShouldBe(5);

        var byProvider = await (await client.GetAsync($"/api/v1/data/{slug}/costs/daily?start_date={Day1}&end_date={Day2}&group_by=provider")).ShouldBeJsonAsync(HttpStatusCode.OK);
        byProvider.GetProperty("rows").EnumerateArray().Select(r => (r.Str("provider"), r.GetProperty("billed_cost").GetDecimal(), r.Str("currency")))
            .ShouldBe([("anthropic", 2.25m, "USD"), ("deepseek", 0.798m, "USD"), ("openai", 14.55m, "USD")]);
        var openaiList = byProvider.GetProperty("rows").EnumerateArray().Single(r => r.Str("provider") == "openai").GetProperty("list_cost").GetDecimal();
        openaiList.ShouldBe(5.50m + 12.50m + 2.80m);
    }

    [Fact]
    public async Task DataApi_PagesGroupsFiltersAndRefusesBadQueries()
    {
        var org = await _harness.OnboardAsync("data");
        using var client = _harness.Factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/usage/{org.Slug}/events", new { events = Events() })).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await _harness.RunAndWaitAsync(client, org.Slug, "usage/events_cost", new { start_date = Day1, end_date = Day2 })).Str("status").ShouldBe("COMPLETED");
        var url = $"/api/v1/data/{org.Slug}/costs/daily?start_date={Day1}&end_date={Day2}";

        var rows = new List<JsonElement>();
        string? token = null;
        do
        {
            var page = await (await client.GetAsync(url + "&limit=1" + (token is null ? "" : "&page_token=" + Uri.EscapeDataString(token)))).ShouldBeJsonAsync(HttpStatusCode.OK);
            rows.AddRange(page.GetProperty("rows").EnumerateArray().Select(r => r.Clone()));
            token = page.GetProperty("next_page").ValueKind == JsonValueKind.Null ? null : page.Str("next_page");
        }
        while (token is not null);

        rows.Count.ShouldBe(5, "gpt-4o and its dated batch variant on Day1; gpt-4o, claude and deepseek on Day2");
        var deepseekOnly = await (await client.GetAsync(url + "&provider=deepseek")).ShouldBeJsonAsync(HttpStatusCode.OK);
        deepseekOnly.GetProperty("rows").EnumerateArray().ShouldHaveSingleItem().Str("model").ShouldBe("deepseek-chat");

        foreach (var (query, field) in new[]
        {
            ("&group_by=colour", "group_by"), ("&provider=azure", "provider"), ("&limit=0", "limit"), ("&page_token=bm9wZQ", "page_token"),
            ("&start_date=2025-13-01", "start_date"), ("&start_date=2026-01-01", "start_date"),
        })
        {
            var problem = await (await client.GetAsync(url + query)).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").TryGetProperty(field, out _).ShouldBeTrue(query);
        }
    }

    [Fact]
    public async Task Events_InvalidOrForeign_AreRefusedAndNothingIsStored()
    {
        var acme = await _harness.OnboardAsync("ev_acme");
        var globex = await _harness.OnboardAsync("ev_globex");
        using var client = _harness.Factory.OrgClient(acme.ApiKey);
        var url = $"/api/v1/usage/{acme.Slug}/events";

        var bad = new Dictionary<string, object?>((IDictionary<string, object?>)Event("x1", "openai", "gpt-4o", Day1, uncached: 1)) { ["output_tokens"] = -5, ["provider"] = "azure" };
        var problem = await (await client.PostJsonAsync(url, new { events = new[] { Event("ok", "openai", "gpt-4o", Day1, uncached: 1), bad } })).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        var errors = problem.Json.GetProperty("errors");
        errors.TryGetProperty("events[1].output_tokens", out _).ShouldBeTrue(problem.Text);
        errors.TryGetProperty("events[1].provider", out _).ShouldBeTrue(problem.Text);
        (await (await client.PostJsonAsync(url, new { events = new[] { Event("d", "openai", "gpt-4o", Day1), Event("d", "openai", "gpt-4o", Day1) } })).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity))
            .Json.GetProperty("errors").TryGetProperty("events[1].event_id", out _).ShouldBeTrue();
        (await (await client.PostJsonAsync(url, new { events = Array.Empty<object>() })).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity)).Text.ShouldContain("10,000");
        (await (await client.PostJsonAsync(url, new { events = Enumerable.Range(0, 10_001).Select(i => Event($"n{i}", "openai", "gpt-4o", Day1)).ToArray() }))
            .ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity)).Text.ShouldContain("10,001");
        (await (await client.PostJsonAsync(url, new { events = new[] { Event("u", "openai", "gpt-4o", Day1) }, extra = 1 })).ShouldBeProblemAsync(HttpStatusCode.BadRequest)).Text.ShouldContain("extra");
        (await client.PostJsonAsync($"/api/v1/usage/{globex.Slug}/events", new { events = new[] { Event("g", "openai", "gpt-4o", Day1) } })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await client.GetAsync($"/api/v1/data/{globex.Slug}/costs/daily")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        var dataset = new WarehouseRows(_harness.Factory, acme.Slug);
        dataset.Exists.ShouldBeTrue();
        (dataset.Tables().Contains("llm_usage_events", StringComparer.Ordinal) ? dataset.Count("llm_usage_events") : 0).ShouldBe(0);
    }
}

/// <summary>The usage event cost tests on the embedded SQLite warehouse.</summary>
public sealed class SqliteUsageEventsCostTests() : UsageEventsCostTests();

/// <summary>The same tests, unchanged, with the control plane and the warehouse on PostgreSQL (fresh databases per test).</summary>
public sealed class PostgresUsageEventsCostTests() : UsageEventsCostTests(PostgresServer.AppSettings("usageevents"));
