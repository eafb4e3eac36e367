using System.Globalization;
using System.Net;
using System.Text.Json;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using static Convergence.IntegrationTests.Support.FakeUsageApis;

namespace Convergence.IntegrationTests.Usage;

/// <summary>An API on a manual clock whose OpenAI and Anthropic base URLs point at <see cref="FakeUsageApis"/>.</summary>
public class UsageApisFixture : IAsyncLifetime
{
    public FakeUsageApis Fake { get; private set; } = null!;

    public PipelineHarness Harness { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Fake = await StartAsync();
        Harness = new PipelineHarness(manualClock: true, new Dictionary<string, string?>(BackendSettings())
        {
            ["OPENAI_BASE_URL"] = Fake.OpenAiBase.AbsoluteUri,
            ["ANTHROPIC_BASE_URL"] = Fake.AnthropicBase.AbsoluteUri,
            // A hanging provider is cut after 1 s of real time (the request timeout is not on the manual clock).
            ["INTEGRATION_CHECK_TIMEOUT_SECONDS"] = "1",
            // Everything is logged, so the canary test sees what HttpClient and the retries would write.
            ["Logging:LogLevel:Default"] = "Trace",
            ["Logging:LogLevel:Microsoft"] = "Trace",
            ["Logging:LogLevel:System"] = "Trace",
        });
        await Harness.Factory.BootstrapAsync();
    }

    public async Task DisposeAsync()
    {
        await Harness.DisposeAsync();
        await Fake.DisposeAsync();
    }

    /// <summary>The store and warehouse the app runs on; the embedded SQLite default unless overridden.</summary>
    protected virtual IReadOnlyDictionary<string, string?> BackendSettings() => new Dictionary<string, string?>();
}

/// <summary>The usage fixture with the control plane and the warehouse on PostgreSQL (fresh databases on the test cluster).</summary>
public sealed class PostgresUsageApisFixture : UsageApisFixture
{
    protected override IReadOnlyDictionary<string, string?> BackendSettings() => PostgresServer.AppSettings("usagecost");
}

/// <summary>The usage and cost pipeline tests on the embedded SQLite warehouse.</summary>
public sealed class SqliteUsageCostPipelineTests(UsageApisFixture fixture) : UsageCostPipelineTests(fixture), IClassFixture<UsageApisFixture>;

/// <summary>The same tests, unchanged, with the control plane and the warehouse on PostgreSQL.</summary>
public sealed class PostgresUsageCostPipelineTests(PostgresUsageApisFixture fixture) : UsageCostPipelineTests(fixture), IClassFixture<PostgresUsageApisFixture>
{
    [Fact]
    public void TheAppRunsOnPostgres()
    {
        Api.Factory.Services.GetRequiredService<Convergence.Core.Storage.IWarehouse>().Kind.ShouldBe("postgres");
        Api.Factory.Services.GetRequiredService<Convergence.Core.Storage.IControlPlaneStore>().Kind.ShouldBe("postgres");
    }
}

/// <summary>
/// <c>openai/usage_cost</c> and <c>anthropic/usage_cost</c> through the run API against loopback fakes replaying the
/// documented response shapes: exact rows, pagination, idempotent reruns, 429/5xx/timeouts recovered per request on the
/// manual clock, truncated JSON, and refused keys marking the integration INVALID. The rows are read through the app's
/// warehouse, so each concrete class runs them on its adapter.
/// </summary>
public abstract class UsageCostPipelineTests : IDisposable
{
    /// <summary>Timers due within this are the run's retry waits; the maintenance timer is an hour out.</summary>
    private static readonly TimeSpan Horizon = TimeSpan.FromMinutes(2);

    private static readonly object Slice = new { start_date = "2025-11-20", end_date = "2025-11-21" };

    private readonly UsageApisFixture _fixture;

    protected UsageCostPipelineTests(UsageApisFixture fixture)
    {
        _fixture = fixture;
        fixture.Fake.Reset();
    }

    protected PipelineHarness Api => _fixture.Harness;

    private FakeUsageApis Fake => _fixture.Fake;

    public void Dispose() => Fake.Reset();

    [Fact]
    public async Task OpenAi_UsageCost_WritesEveryPageAsExactRows()
    {
        var (org, client) = await SetUpAsync("openai");

        var run = await RunAsync(client, org, "openai");

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        // Hand-computed from the fixtures: uncached = input − cached (page 1), input_uncached_tokens when sent (page 2).
        UsageRows(org, "openai_usage_daily_raw").ShouldBe(
        [
            "2025-11-20|gpt-4o-2024-08-06|proj_7hKc2Lq9|key_a1B2c3D4|0|921600|921600|0|0|204800|812|",
            "2025-11-20|gpt-4o-mini-2024-07-18|proj_Q2mZ81xa|key_Z9y8X7w6|0|5120000|0|0|0|640000|4300|",
            "2025-11-20|text-embedding-3-small|proj_7hKc2Lq9|key_a1B2c3D4|0|16|0|0|0|0|2|",
            "2025-11-21|gpt-4o-2024-08-06|proj_7hKc2Lq9|key_a1B2c3D4|1|500|400|100|0|500|5|",
        ]);
        var sums = Db(org).Rows("SELECT SUM(uncached_input_tokens) AS u, SUM(cached_input_tokens) AS c, SUM(output_tokens) AS o, SUM(requests) AS r FROM openai_usage_daily_raw").Single();
        (sums.Long("u"), sums.Long("c"), sums.Long("o"), sums.Long("r")).ShouldBe((6042116L, 922000L, 845300L, 5119L));
        Db(org).Rows("SELECT DISTINCT source, provider, pipeline_logging_id FROM openai_usage_daily_raw").Single()
            .ShouldBe(new Dictionary<string, object?> { ["source"] = "usage_api", ["provider"] = "openai", ["pipeline_logging_id"] = run.Str("pipeline_logging_id") });

        CostRows(org, "openai_billed_cost_daily", "line_item").ShouldBe(
        [
            "2025-11-20|proj_7hKc2Lq9|gpt-4o-2024-08-06, input|2.304|USD",
            "2025-11-20|proj_7hKc2Lq9|gpt-4o-2024-08-06, output|2.048|USD",
            "2025-11-21||null|0.06|USD",
            "2025-11-21|proj_7hKc2Lq9|gpt-4o-2024-08-06, batch input|0.0065|USD",
        ], ignoreOrder: true);
        SumAmount(org, "openai_billed_cost_daily").ShouldBe(4.4185m);

        var dq = (await PipelineHarness.GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("dq_results").EnumerateArray().ToList();
        dq.Select(d => d.Str("check_name")).ShouldContain("unique_usage_date_model_project_id_api_key_id_batch", dq.Count.ToString(CultureInfo.InvariantCulture));
        dq.Where(d => d.Str("check_name") != "computed_within_2pct_of_billed").ShouldAllBe(d => d.Str("status") == "PASSED");
        // The documented sample bills are not the sample usage at list price: the reconciliation warns, and only warns.
        var reconcile = dq.Single(d => d.Str("check_name") == "computed_within_2pct_of_billed");
        (reconcile.Str("severity"), reconcile.Str("status")).ShouldBe(("warn", "FAILED"));
        run.Str("status").ShouldBe("COMPLETED");

        Fake.RequestsTo(OpenAiCompletions).Select(r => r.Page).ShouldBe([1, 2]);
        Fake.RequestsTo(OpenAiEmbeddings).Select(r => r.Page).ShouldBe([1]);
        Fake.RequestsTo(OpenAiCosts).Select(r => r.Page).ShouldBe([1, 2]);
        Fake.Requests.ShouldAllBe(r => r.Authorized);
        Fake.RequestsTo(OpenAiCompletions)[0].Query.ShouldBe("?start_time=1763596800&end_time=1763769600&bucket_width=1d&group_by=model&group_by=project_id&group_by=api_key_id&group_by=batch&limit=31");
        Fake.RequestsTo(OpenAiCompletions)[1].Query.ShouldEndWith("&page=page_AAAAAGdGxdEiJdKOAAAAAGcqsYA%3D");
        Fake.RequestsTo(OpenAiCosts)[0].Query.ShouldBe("?start_time=1763596800&end_time=1763769600&bucket_width=1d&group_by=project_id&group_by=line_item&limit=31");
    }

    [Fact]
    public async Task Anthropic_UsageCost_WritesEveryPageAsExactRowsWithCentsInDollars()
    {
        var (org, client) = await SetUpAsync("anthropic");

        var run = await RunAsync(client, org, "anthropic");

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        // The usage report has no request count: requests is NULL (the empty field), not a claimed 0.
        UsageRows(org, "anthropic_usage_daily_raw").ShouldBe(
        [
            "2025-11-20|claude-haiku-4-5-20251001|||0|2000|0|0|0|300||0",
            "2025-11-20|claude-sonnet-4-20250514|wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ|apikey_01Rj2N8SVvo6BePZj99NhmiT|0|1500|200|500|1000|500||10",
            "2025-11-21|claude-sonnet-4-20250514|wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ|apikey_01Rj2N8SVvo6BePZj99NhmiT|1|10000|0|0|0|4000||0",
        ]);
        // "123.78912" cents = $1.2378912, "48211.5" cents = $482.115, "1000" cents = $10.
        CostRows(org, "anthropic_billed_cost_daily", "description").ShouldBe(
        [
            "2025-11-20|wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ|Claude Sonnet 4 Usage - Input Tokens|1.2378912|USD",
            "2025-11-21||null|482.115|USD",
            "2025-11-21|wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ|Web Search Usage|10|USD",
        ], ignoreOrder: true);
        SumAmount(org, "anthropic_billed_cost_daily").ShouldBe(493.3528912m);
        Db(org).Rows("SELECT cost_type, model FROM anthropic_billed_cost_daily WHERE usage_date = '2025-11-20'").Single()
            .ShouldBe(new Dictionary<string, object?> { ["cost_type"] = "tokens", ["model"] = "claude-sonnet-4-20250514" });

        Fake.RequestsTo(AnthropicMessages).Select(r => r.Page).ShouldBe([1, 2]);
        Fake.RequestsTo(AnthropicCostReport).Select(r => r.Page).ShouldBe([1, 2]);
        Fake.Requests.ShouldAllBe(r => r.Authorized, "x-api-key and anthropic-version 2023-06-01 on every request");
        Uri.UnescapeDataString(Fake.RequestsTo(AnthropicMessages)[0].Query).ShouldBe(
            "?starting_at=2025-11-20T00:00:00Z&ending_at=2025-11-22T00:00:00Z&bucket_width=1d&group_by[]=model&group_by[]=workspace_id&group_by[]=api_key_id&group_by[]=service_tier&limit=31");
        Uri.UnescapeDataString(Fake.RequestsTo(AnthropicCostReport)[1].Query).ShouldEndWith("&page=page_MjAyNS0wNS0xNFQwMDowMDowMFo=");
    }

    /// <summary>
    /// A dataset from an earlier release has <c>requests</c> REQUIRED in both Anthropic tables; the run's writes relax the
    /// column (the SQLite adapter rebuilds the table), keep the rows already there and price exactly as on a new dataset.
    /// </summary>
    [Fact]
    public async Task Anthropic_UsageCost_OnTablesWithRequiredRequests_RelaxesThemAndWritesNullRequests()
    {
        var (fresh, freshClient) = await SetUpAsync("anthropic");
        var (legacy, legacyClient) = await SetUpAsync("anthropic");
        var warehouse = Api.Factory.Services.GetRequiredService<IWarehouse>();
        var configs = Api.Factory.Services.GetRequiredService<Convergence.Core.Configuration.ConfigsFolder>();
        var dataset = Convergence.Core.Organizations.DatasetRef.ForOrg(Convergence.Core.Organizations.OrgSlug.From(legacy), Convergence.Core.Organizations.DeploymentEnvironment.Development);
        TableSchema Old(string table)
        {
            var schema = TableSchema.Load(configs.Resolve($"anthropic/schemas/{table}.json"));
            return schema with { Columns = [.. schema.Columns.Select(c => c.Name == "requests" ? c with { Required = true } : c)] };
        }

        var oldRaw = Old("anthropic_usage_daily_raw");
        (await warehouse.EnsureTableAsync(dataset, Old("anthropic_cost_daily"), CancellationToken.None)).ShouldBeTrue();
        (await warehouse.EnsureTableAsync(dataset, oldRaw, CancellationToken.None)).ShouldBeTrue();
        await using (var write = await warehouse.BeginWriteAsync(dataset, oldRaw, WriteSpec.Append, CancellationToken.None))
        {
            await write.WriteRecordsAsync(
                ["usage_date", "provider", "model", "batch", "uncached_input_tokens", "cached_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens", "requests", "source", "ingested_at", "pipeline_logging_id"],
                [[new DateOnly(2025, 11, 19), "anthropic", "claude-haiku-4-5-20251001", false, 10L, 0L, 0L, 0L, 5L, 0L, "usage_api", new DateTimeOffset(2025, 11, 19, 1, 0, 0, TimeSpan.Zero), "earlier_release"]],
                CancellationToken.None);
            await write.CommitAsync(CancellationToken.None);
        }

        var freshRun = await RunAsync(freshClient, fresh, "anthropic");
        var legacyRun = await RunAsync(legacyClient, legacy, "anthropic");

        (freshRun.Str("status"), legacyRun.Str("status")).ShouldBe(("COMPLETED", "COMPLETED"), legacyRun.ToString());
        UsageRows(legacy, "anthropic_usage_daily_raw").ShouldBe(
        [
            "2025-11-19|claude-haiku-4-5-20251001|||0|10|0|0|0|5|0|",
            .. UsageRows(fresh, "anthropic_usage_daily_raw"),
        ]);
        Db(legacy).Rows("SELECT COUNT(*) AS n FROM anthropic_usage_daily_raw WHERE requests IS NULL").Single()["n"].ShouldBe(3L);
        Db(legacy).Rows("SELECT COUNT(*) AS n FROM anthropic_cost_daily WHERE requests IS NULL").Single()["n"].ShouldBe(3L);
        const string Costs = "SELECT usage_date, model, batch, requests, priced, total_cost, list_cost FROM anthropic_cost_daily ORDER BY usage_date, model, batch";
        var legacyCosts = Db(legacy).Rows(Costs);
        legacyCosts.ShouldBe(Db(fresh).Rows(Costs));
        legacyCosts.ShouldAllBe(r => (long)r["priced"]! == 1L);
        legacyCosts.Sum(r => decimal.Parse((string)r["total_cost"]!, CultureInfo.InvariantCulture)).ShouldBeGreaterThan(0m);
        const string Focus = "SELECT charge_date, billed_cost, effective_cost FROM cost_focus_daily ORDER BY charge_date, billed_cost";
        Db(legacy).Rows(Focus).ShouldBe(Db(fresh).Rows(Focus));
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    public async Task Rerun_SameSlice_ReplacesTheRowsWithoutDoubling(string provider)
    {
        var (org, client) = await SetUpAsync(provider);
        var first = await RunAsync(client, org, provider);
        var usage = $"{provider}_usage_daily_raw";
        var billed = $"{provider}_billed_cost_daily";
        var rowsAfterFirst = UsageRows(org, usage);

        var second = await RunAsync(client, org, provider);

        (first.Str("status"), second.Str("status")).ShouldBe(("COMPLETED", "COMPLETED"));
        UsageRows(org, usage).ShouldBe(rowsAfterFirst);
        Db(org).Rows($"SELECT DISTINCT pipeline_logging_id FROM {usage}").Single()["pipeline_logging_id"].ShouldBe(second.Str("pipeline_logging_id"));
        Db(org).Count(billed).ShouldBe(provider == "openai" ? 4 : 3);
    }

    [Fact]
    public async Task OpenAi_OneDayRerunWithALateCorrection_ReplacesThatDayOnlyAndSkipsBucketsOutsideTheSlice()
    {
        var (org, client) = await SetUpAsync("openai");
        var first = await RunAsync(client, org, "openai");
        // OpenAI revised 2025-11-20: the mini model's day grew; the fake still answers both days.
        var corrected = File.ReadAllText(FixturePath("openai_completions", 1))
            .Replace("\"input_tokens\": 5120000", "\"input_tokens\": 5200000", StringComparison.Ordinal)
            .Replace("\"num_model_requests\": 4300", "\"num_model_requests\": 4321", StringComparison.Ordinal);
        Fake.Replace(OpenAiCompletions, 1, corrected);

        var id = await PipelineHarness.StartRunAsync(client, org, "openai/usage_cost", new { date = "2025-11-20" });
        JsonElement second = default;
        (await Api.DriveAsync(Task.Run(async () => second = await Api.WaitForRunAsync(client, id)), Horizon)).ShouldBeNull();

        second.Str("status").ShouldBe("COMPLETED", second.ToString());
        Fake.RequestsTo(OpenAiCompletions).First(r => r.Page == 1 && r.Query.Contains("end_time=1763683200", StringComparison.Ordinal)).Query
            .ShouldStartWith("?start_time=1763596800&end_time=1763683200&bucket_width=1d&");
        UsageRows(org, "openai_usage_daily_raw").ShouldBe(
        [
            "2025-11-20|gpt-4o-2024-08-06|proj_7hKc2Lq9|key_a1B2c3D4|0|921600|921600|0|0|204800|812|",
            "2025-11-20|gpt-4o-mini-2024-07-18|proj_Q2mZ81xa|key_Z9y8X7w6|0|5200000|0|0|0|640000|4321|",
            "2025-11-20|text-embedding-3-small|proj_7hKc2Lq9|key_a1B2c3D4|0|16|0|0|0|0|2|",
            "2025-11-21|gpt-4o-2024-08-06|proj_7hKc2Lq9|key_a1B2c3D4|1|500|400|100|0|500|5|",
        ]);
        Db(org).Rows("SELECT usage_date, pipeline_logging_id FROM openai_usage_daily_raw GROUP BY usage_date, pipeline_logging_id ORDER BY usage_date")
            .Select(r => ((string)r["usage_date"]!, (string)r["pipeline_logging_id"]!))
            .ShouldBe([("2025-11-20", second.Str("pipeline_logging_id")), ("2025-11-21", first.Str("pipeline_logging_id"))], "the day outside the slice keeps the first run's rows");
        var metadata = (await StepAsync(client, second, "fetch_usage")).GetProperty("metadata");
        metadata.GetProperty("rows_outside_slice_skipped").GetInt32().ShouldBe(1);
        metadata.GetProperty("rows_written").GetInt32().ShouldBe(3);
    }

    [Fact]
    public async Task OpenAi_429WithRetryAfter_WaitsOnTheClockAndResumesAtThatPage()
    {
        var (org, client) = await SetUpAsync("openai");
        Fake.Fail(OpenAiCompletions, 2, "429");
        var before = Api.ManualClock!.GetUtcNow();

        var run = await RunAsync(client, org, "openai");

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        (Api.ManualClock.GetUtcNow() - before).ShouldBeGreaterThanOrEqualTo(TimeSpan.FromSeconds(RetryAfterSeconds), "Retry-After is honoured on the clock");
        Fake.RequestsTo(OpenAiCompletions).Select(r => r.Page).ShouldBe([1, 2, 2], "page 1 is not fetched again");
        Db(org).Count("openai_usage_daily_raw").ShouldBe(4);
        (await StepAsync(client, run, "fetch_usage")).GetProperty("attempt").GetInt32().ShouldBe(1, "the client retried the request, not the executor the step");
    }

    [Fact]
    public async Task OpenAi_500ThenATimeout_AreRetriedOnTheSameRequest()
    {
        var (org, client) = await SetUpAsync("openai");
        Fake.Fail(OpenAiCosts, 1, "500", "hang");

        var run = await RunAsync(client, org, "openai");

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Fake.RequestsTo(OpenAiCosts).Select(r => r.Page).ShouldBe([1, 1, 1, 2]);
        SumAmount(org, "openai_billed_cost_daily").ShouldBe(4.4185m);
        (await StepAsync(client, run, "fetch_billed_costs")).GetProperty("attempt").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task Anthropic_5xxBeyondTheClientsAttempts_IsRetriedByTheStepAndCompletes()
    {
        var (org, client) = await SetUpAsync("anthropic");
        Fake.Fail(AnthropicMessages, 2, "500", "500", "500", "500");

        var run = await RunAsync(client, org, "anthropic");

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        (await StepAsync(client, run, "fetch_usage")).GetProperty("attempt").GetInt32().ShouldBe(2);
        Fake.RequestsTo(AnthropicMessages).Select(r => r.Page).ShouldBe([1, 2, 2, 2, 2, 1, 2]);
        Db(org).Count("anthropic_usage_daily_raw").ShouldBe(3);
    }

    [Fact]
    public async Task OpenAi_TruncatedJsonOnce_IsRetriedAndCompletes()
    {
        var (org, client) = await SetUpAsync("openai");
        Fake.Fail(OpenAiCompletions, 2, "truncated");

        var run = await RunAsync(client, org, "openai");

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Db(org).Count("openai_usage_daily_raw").ShouldBe(4);
    }

    [Fact]
    public async Task OpenAi_TruncatedJsonTwice_FailsNamingEndpointAndPageAndKeepsThePreviousRows()
    {
        var (org, client) = await SetUpAsync("openai");
        var good = await RunAsync(client, org, "openai");
        var before = UsageRows(org, "openai_usage_daily_raw");
        Fake.Fail(OpenAiCompletions, 2, "truncated", "truncated");

        var run = await RunAsync(client, org, "openai");

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain("GET organization/usage/completions (page 2)");
        run.Str("error_message").ShouldContain("not valid JSON");
        var step = await StepAsync(client, run, "fetch_usage");
        (step.Str("status"), step.GetProperty("attempt").GetInt32()).ShouldBe(("FAILED", 1), "a body malformed twice is not retried by the step");
        (await StepAsync(client, run, "fetch_billed_costs")).Str("status").ShouldBe("SKIPPED");
        UsageRows(org, "openai_usage_daily_raw").ShouldBe(before, "no partial rows: the slice keeps what the last good run wrote");
        Db(org).Rows("SELECT DISTINCT pipeline_logging_id FROM openai_usage_daily_raw").Single()["pipeline_logging_id"].ShouldBe(good.Str("pipeline_logging_id"));
    }

    [Theory]
    [InlineData("openai", "Incorrect API key provided")]
    [InlineData("anthropic", "invalid x-api-key")]
    public async Task RefusedKey_FailsTheRunMarksTheIntegrationInvalidAndWritesNothing(string provider, string providerMessage)
    {
        var (org, client) = await SetUpAsync(provider);
        Fake.Revoked = true;

        var run = await RunAsync(client, org, provider);

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain("refused the credential (401)");
        run.Str("error_message").ShouldContain(providerMessage);
        var key = provider == "openai" ? FakeProviders.OpenAiAdminKey : FakeProviders.AnthropicAdminKey;
        run.ToString().ShouldNotContain(key[^8..]);
        var step = await StepAsync(client, run, "fetch_usage");
        (step.Str("status"), step.GetProperty("attempt").GetInt32()).ShouldBe(("FAILED", 1), "401 is terminal");
        (await StepAsync(client, run, "fetch_billed_costs")).Str("status").ShouldBe("SKIPPED");
        Db(org).Exists.ShouldBeTrue();
        UsageRows(org, $"{provider}_usage_daily_raw").ShouldBeEmpty();

        var status = await (await client.GetAsync($"/api/v1/integrations/{org}/{provider}")).ShouldBeJsonAsync(HttpStatusCode.OK);
        status.Str("validation_status").ShouldBe("INVALID");
        status.Str("last_error").ShouldContain(providerMessage);
        status.Str("last_error").ShouldNotContain(key[^8..]);
    }

    [Fact]
    public async Task Credentials_NeverAppearInLogsRunRecordsOrStoredFiles()
    {
        var (openAiOrg, openAiClient) = await SetUpAsync("openai");
        var (anthropicOrg, anthropicClient) = await SetUpAsync("anthropic");
        Fake.Fail(OpenAiCompletions, 2, "429");
        Fake.Fail(AnthropicCostReport, 1, "500");
        var bodies = new List<string>
        {
            (await RunAsync(openAiClient, openAiOrg, "openai")).ToString(),
            (await RunAsync(anthropicClient, anthropicOrg, "anthropic")).ToString(),
        };
        Fake.Revoked = true;
        bodies.Add((await RunAsync(openAiClient, openAiOrg, "openai")).ToString());
        bodies.Add((await RunAsync(anthropicClient, anthropicOrg, "anthropic")).ToString());
        foreach (var (org, client) in new[] { (openAiOrg, openAiClient), (anthropicOrg, anthropicClient) })
        {
            bodies.Add(await (await client.GetAsync($"/api/v1/organizations/{org}/comprehensive-view")).Content.ReadAsStringAsync());
        }

        var logs = Api.Factory.Logs.Records.SelectMany(r => r.AllText()).ToList();
        logs.ShouldContain(l => l.Contains("attempt 2", StringComparison.Ordinal), "the retries were logged");
        foreach (var key in new[] { FakeProviders.OpenAiAdminKey, FakeProviders.AnthropicAdminKey })
        {
            // The fake's keys end in zeros, which trace ids have too: look for their distinctive start.
            var tail = key[..16];
            logs.Where(l => l.Contains(tail, StringComparison.Ordinal)).ShouldBeEmpty();
            bodies.ShouldNotContain(b => b.Contains(tail, StringComparison.Ordinal));
            foreach (var file in Directory.EnumerateFiles(Api.Factory.DataDirectory, "*", SearchOption.AllDirectories))
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var reader = new StreamReader(stream, System.Text.Encoding.Latin1);
                (await reader.ReadToEndAsync()).ShouldNotContain(tail, Case.Sensitive, file);
            }
        }
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    private async Task<(string Org, HttpClient Client)> SetUpAsync(string provider)
    {
        var org = await Api.OnboardAsync(provider[..4]);
        var client = Api.Factory.OrgClient(org.ApiKey);
        var key = provider == "openai" ? FakeProviders.OpenAiAdminKey : FakeProviders.AnthropicAdminKey;
        using var setup = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/{provider}/setup", new { credential = key });
        (await setup.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("validation_status").ShouldBe("VALID");
        Fake.Reset();
        return (org.Slug, client);
    }

    private async Task<JsonElement> RunAsync(HttpClient client, string org, string provider)
    {
        var id = await PipelineHarness.StartRunAsync(client, org, $"{provider}/usage_cost", Slice);
        JsonElement run = default;
        var failure = await Api.DriveAsync(Task.Run(async () => run = await Api.WaitForRunAsync(client, id)), Horizon);
        failure.ShouldBeNull();
        return run;
    }

    private static async Task<JsonElement> StepAsync(HttpClient client, JsonElement run, string stepId) =>
        (await PipelineHarness.GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().Single(s => s.Str("step_id") == stepId);

    private WarehouseRows Db(string org) => new(Api.Factory, org);

    /// <summary>usage_date|model|project|key|batch|uncached|cached|5m|1h|output|requests|web_search, ordered.</summary>
    private List<string> UsageRows(string org, string table)
    {
        var db = Db(org);
        if (!db.Exists || !db.Tables().Contains(table, StringComparer.Ordinal))
        {
            return [];
        }

        return [.. db.Rows($"SELECT * FROM {table}").Select(r => string.Join("|",
                new[] { "usage_date", "model", "project_id", "api_key_id", "batch", "uncached_input_tokens", "cached_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens", "requests", "web_search_requests" }
                    .Select(c => Convert.ToString(r[c], CultureInfo.InvariantCulture))))
            .Order(StringComparer.Ordinal)];
    }

    /// <summary>usage_date|project|{label column}|amount|currency, ordered; a null label shows as "null".</summary>
    private List<string> CostRows(string org, string table, string label) =>
        [.. Db(org).Rows($"SELECT usage_date, project_id, {label} AS label, amount, currency FROM {table}")
            .Select(r => $"{r["usage_date"]}|{r["project_id"]}|{r["label"] ?? "null"}|{r["amount"]}|{r["currency"]}")
            .Order(StringComparer.Ordinal)];

    private decimal SumAmount(string org, string table) =>
        Db(org).Rows($"SELECT amount FROM {table}").Sum(r => decimal.Parse((string)r["amount"]!, CultureInfo.InvariantCulture));
}
