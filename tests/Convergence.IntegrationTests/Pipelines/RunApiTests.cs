using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;
using Microsoft.AspNetCore.Http;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>The run API end to end: queue, worker, executor, run/step/DQ records, and what callers may not do.</summary>
public sealed class RunApiTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string Example = "gcp/example/dryrun";

    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task RunNested_ExampleDryrunWithDate_Is202AndCompletesWithStepAndDqResults()
    {
        var org = await Api.OnboardAsync("runapi");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, Example, new { date = "2025-11-20" });

        var accepted = await response.ShouldBeJsonAsync(HttpStatusCode.Accepted);
        var id = accepted.Str("pipeline_logging_id");
        id.ShouldNotBeNullOrWhiteSpace();
        accepted.Str("status_url").ShouldBe($"/api/v1/pipelines/runs/{id}");
        response.Headers.Location.ShouldNotBeNull().OriginalString.ShouldBe($"/api/v1/pipelines/runs/{id}");
        accepted.Str("pipeline").ShouldBe(Example);
        accepted.Str("org_slug").ShouldBe(org.Slug);
        accepted.Str("pipeline_id").ShouldBe($"{org.Slug}-gcp-example-dryrun");
        accepted.GetProperty("parameters").GetProperty("date").GetString().ShouldBe("2025-11-20");

        var run = await Api.WaitForRunAsync(client, id);
        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        run.GetProperty("error_class").ValueKind.ShouldBe(JsonValueKind.Null);
        run.Str("trigger").ShouldBe("API");
        run.GetProperty("resolved_config").GetProperty("pipeline_path").GetString().ShouldBe(Example);

        var steps = await PipelineHarness.GetStepsAsync(client, id);
        steps.Str("status").ShouldBe("COMPLETED");
        var step = steps.GetProperty("steps").EnumerateArray().ShouldHaveSingleItem();
        step.Str("step_id").ShouldBe("write_validation_rows");
        step.Str("status").ShouldBe("COMPLETED");
        step.GetProperty("rows_processed").GetInt64().ShouldBe(1);
        step.GetProperty("attempt").GetInt32().ShouldBe(1);
        var dq = steps.GetProperty("dq_results").EnumerateArray().ToList();
        dq.Count.ShouldBe(5, steps.ToString());
        dq.Select(d => d.Str("check_name")).ShouldBe(
            ["not_null_run_date", "unique_run_date", "accepted_values_org_slug", "row_count_min", "created_after_run_date"], ignoreOrder: true);
        dq.ShouldAllBe(d => d.GetProperty("status").GetString() == "PASSED");
        dq.ShouldAllBe(d => d.GetProperty("table").GetString() == "onboarding_validation_test");
        dq.ShouldAllBe(d => d.GetProperty("step_logging_id").GetString() == step.GetProperty("step_logging_id").GetString());

        var rows = Api.Factory.Warehouse(org.Slug)
            .Rows("SELECT run_date, org_slug, pipeline_logging_id FROM onboarding_validation_test WHERE run_date = '2025-11-20'");
        var row = rows.ShouldHaveSingleItem();
        row["org_slug"].ShouldBe(org.Slug);
        row["pipeline_logging_id"].ShouldBe(id);
    }

    [Fact]
    public async Task RunFlat_TestingPipeline_CompletesThroughTheTwoSegmentRoute()
    {
        var org = await Api.OnboardAsync("flat");
        Api.Probe.For(org.Slug).Rows = [PipelineHarness.Row("2025-11-20", "a", 1), PipelineHarness.Row("2025-11-20", "b", 2)];
        using var client = Api.Factory.OrgClient(org.ApiKey);

        var run = await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-20" });

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        run.Str("pipeline").ShouldBe(TestPipelines.Rows);
        var step = (await PipelineHarness.GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().ShouldHaveSingleItem();
        step.GetProperty("rows_processed").GetInt64().ShouldBe(2);
        Api.TableRows(org.Slug).Count.ShouldBe(2);
    }

    [Fact]
    public async Task Run_WithoutBody_RunsForTodayOnTheAppClock()
    {
        var org = await Api.OnboardAsync("today");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var today = Api.Factory.Clock.GetUtcNow().ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);

        using var response = await client.PostAsync(PipelineHarness.RunUrl(org.Slug, TestPipelines.Rows), null);

        var accepted = await response.ShouldBeJsonAsync(HttpStatusCode.Accepted);
        accepted.GetProperty("parameters").GetProperty("date").GetString().ShouldBe(today, "the date is pinned when the run is queued");
        (await Api.WaitForRunAsync(client, accepted.Str("pipeline_logging_id"))).Str("status").ShouldBe("COMPLETED");
    }

    [Fact]
    public async Task Run_RootKeyForAnUnknownOrg_Is404()
    {
        using var root = Api.Factory.RootClient();
        var slug = PipelineHarness.NewSlug("ghost");

        using var response = await PipelineHarness.PostRunAsync(root, slug, Example, new { date = "2025-11-20" });

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        Api.Factory.ControlPlane().CountForOrg("org_meta_pipeline_runs", slug).ShouldBe(0);
    }

    [Fact]
    public async Task Run_SuspendedOrg_IsRefusedAndQueuesNothing()
    {
        var org = await Api.OnboardAsync("suspend");
        using var root = Api.Factory.RootClient();
        using (var patch = await root.PatchJsonAsync($"/api/v1/organizations/{org.Slug}", new { status = "SUSPENDED" }))
        {
            await patch.ShouldBeJsonAsync(HttpStatusCode.OK);
        }

        var before = Api.Factory.ControlPlane().CountForOrg("org_meta_pipeline_runs", org.Slug);
        using var asRoot = await PipelineHarness.PostRunAsync(root, org.Slug, Example, new { date = "2025-11-20" });
        using var orgClient = Api.Factory.OrgClient(org.ApiKey);
        using var asOrg = await PipelineHarness.PostRunAsync(orgClient, org.Slug, Example, new { date = "2025-11-20" });

        var problem = await asRoot.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        problem.Json.Str("detail").ShouldContain("SUSPENDED");
        ((int)asOrg.StatusCode).ShouldBeInRange(401, 403, "a suspended org's key is refused");
        Api.Factory.ControlPlane().CountForOrg("org_meta_pipeline_runs", org.Slug).ShouldBe(before);
    }

    [Theory]
    [InlineData("status=DONE", "status")]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=201", "limit")]
    [InlineData("org=Not-A-Slug", "org")]
    public async Task ListRuns_InvalidQuery_Is422NamingTheParameter(string query, string field)
    {
        var org = await Api.OnboardAsync("query");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await client.GetAsync($"/api/v1/pipelines/runs?{query}");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty(field, out _).ShouldBeTrue(problem.Text);
    }

    [Theory]
    [InlineData("gcp/example/nope")]
    [InlineData("gcp/nope")]
    [InlineData("nope/example/dryrun")]
    [InlineData("testing/nope")]
    public async Task Run_UnknownPipeline_Is404(string pipeline)
    {
        var org = await Api.OnboardAsync("unknown");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, pipeline, new { date = "2025-11-20" });

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        RunCount(org.Slug, pipeline).ShouldBe(0);
    }

    [Theory]
    [InlineData("setup/organizations/onboarding")]
    [InlineData("setup/organizations/dryrun")]
    [InlineData("setup/bootstrap/pipeline")]
    [InlineData("integrations/gcp/credentials")]
    [InlineData("notify_systems/email/send")]
    public async Task Run_PlatformFolderThroughTheOrgRoute_Is404(string pipeline)
    {
        var org = await Api.OnboardAsync("platform");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        var before = RunCount(org.Slug, pipeline);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, pipeline, new { org_slug = org.Slug });

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        RunCount(org.Slug, pipeline).ShouldBe(before);
    }

    [Theory]
    [InlineData("../setup/bootstrap")]
    [InlineData("gcp/../dryrun")]
    [InlineData("%2e%2e/setup/bootstrap")]
    [InlineData("%2E%2E/%2e%2e/setup")]
    [InlineData("gcp/%2e%2e/dryrun")]
    [InlineData("gcp/example/..%2fdryrun")]
    [InlineData("gcp%2fexample/dryrun")]
    [InlineData("./example/dryrun")]
    [InlineData("gcp/example/dryrun.yml")]
    [InlineData("GCP/example/dryrun")]
    public async Task Run_TraversalOrOddSegments_Is404Never500(string pipeline)
    {
        var org = await Api.OnboardAsync("travers");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        // Set on the request as written: HttpClient would collapse dot segments before they reach the app, so this
        // goes through the test server directly. FromUriComponent decodes %2e as a server does, without normalising.
        var path = PathString.FromUriComponent(PipelineHarness.RunUrl(org.Slug, pipeline));
        var context = await Api.Factory.Server.SendAsync(c =>
        {
            c.Request.Method = HttpMethods.Post;
            c.Request.Path = path;
            c.Request.Headers[ConvergenceApiFactory.ApiKeyHeader] = org.ApiKey;
            c.Request.ContentType = "application/json";
            c.Request.Body = new MemoryStream("""{"date":"2025-11-20"}"""u8.ToArray());
        });

        var body = await new StreamReader(context.Response.Body).ReadToEndAsync();
        context.Response.StatusCode.ShouldBe(404, $"{path.Value}: {body}");
        Api.Factory.ErrorLog().ShouldNotContain(org.Slug);
    }

    [Theory]
    [InlineData("""{"date":"2025-13-01"}""", "date")]
    [InlineData("""{"date":"20-11-2025"}""", "date")]
    [InlineData("""{"date":"2025-11-20T00:00:00Z"}""", "date")]
    [InlineData("""{"date":""}""", "date")]
    [InlineData("""{"start_date":"2025-11-20"}""", "end_date")]
    [InlineData("""{"end_date":"2025-11-20"}""", "start_date")]
    [InlineData("""{"start_date":"2025-11-21","end_date":"2025-11-20"}""", "start_date")]
    [InlineData("""{"start_date":"2025-11-01","end_date":"2025-02-30"}""", "end_date")]
    [InlineData("""{"date":"2025-11-20","start_date":"2025-11-20","end_date":"2025-11-20"}""", "date")]
    public async Task Run_InvalidDates_Is422NamingTheField(string json, string field)
    {
        var org = await Api.OnboardAsync("dates");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await client.PostRawAsync(PipelineHarness.RunUrl(org.Slug, Example), json);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty(field, out _).ShouldBeTrue(problem.Text);
        RunCount(org.Slug, Example).ShouldBe(1, "only onboarding's validation run");
    }

    [Fact]
    public async Task Run_RangeOverMaxDateRangeDays_Is422()
    {
        var org = await Api.OnboardAsync("range");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        // gcp/example/dryrun allows 31 days: 2025-11-01..2025-12-01 is 31, ..12-02 is 32.
        using var ok = await PipelineHarness.PostRunAsync(client, org.Slug, Example, new { start_date = "2025-11-01", end_date = "2025-12-01" });
        using var tooLong = await PipelineHarness.PostRunAsync(client, org.Slug, Example, new { start_date = "2025-11-01", end_date = "2025-12-02" });

        await ok.ShouldBeJsonAsync(HttpStatusCode.Accepted);
        var problem = await tooLong.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        var message = problem.Json.GetProperty("errors").GetProperty("end_date")[0].GetString();
        message.ShouldNotBeNull().ShouldContain("32");
        message.ShouldContain("31");
    }

    [Fact]
    public async Task Run_UnknownParameter_Is422NamingIt()
    {
        var org = await Api.OnboardAsync("param");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, Example, new Dictionary<string, string> { ["date"] = "2025-11-20", ["force_full_refresh"] = "true" });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty("force_full_refresh", out _).ShouldBeTrue(problem.Text);
        RunCount(org.Slug, Example).ShouldBe(1, "only onboarding's validation run");
    }

    [Fact]
    public async Task Run_OtherOrgsKey_Is403AndQueuesNothing()
    {
        var owner = await Api.OnboardAsync("owner");
        var other = await Api.OnboardAsync("other");
        using var client = Api.Factory.OrgClient(other.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, owner.Slug, Example, new { date = "2025-11-20" });

        await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        RunCount(owner.Slug, Example).ShouldBe(1, "only onboarding's validation run");
        RunCount(other.Slug, Example).ShouldBe(1, "only onboarding's validation run");
    }

    [Theory]
    [InlineData("GET", "")]
    [InlineData("GET", "/steps")]
    [InlineData("POST", "/cancel")]
    public async Task RunRoutes_OtherOrgsRunId_Is404(string method, string suffix)
    {
        var owner = await Api.OnboardAsync("owner");
        var other = await Api.OnboardAsync("other");
        using var ownerClient = Api.Factory.OrgClient(owner.ApiKey);
        using var otherClient = Api.Factory.OrgClient(other.ApiKey);
        var runId = await PipelineHarness.StartRunAsync(ownerClient, owner.Slug, TestPipelines.Block);
        await Api.Probe.For(owner.Slug).Blocked.WaitAsync(PipelineHarness.Patience);

        using var response = await otherClient.SendAsync(new HttpMethod(method), $"/api/v1/pipelines/runs/{runId}{suffix}");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        problem.Text.ShouldNotContain(owner.Slug);
        var stored = await Api.Store.FindRunAsync(runId, null, CancellationToken.None);
        stored.ShouldNotBeNull().CancelRequestedAt.ShouldBeNull("another org's cancel must not reach the run");
        Api.Probe.For(owner.Slug).Release();
        (await Api.WaitForRunAsync(ownerClient, runId)).Str("status").ShouldBe("COMPLETED");
    }

    [Fact]
    public async Task ListRuns_OtherOrgInQueryWithOrgKey_Is403()
    {
        var owner = await Api.OnboardAsync("owner");
        var other = await Api.OnboardAsync("other");
        using var client = Api.Factory.OrgClient(other.ApiKey);

        using var runs = await client.GetAsync($"/api/v1/pipelines/runs?org={owner.Slug}");
        using var pipelines = await client.GetAsync($"/api/v1/pipelines?org={owner.Slug}");

        await runs.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        await pipelines.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task ListPipelines_OwnOrg_ListsExampleAndTestingButNoPlatformPipeline()
    {
        var org = await Api.OnboardAsync("list");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await client.GetAsync("/api/v1/pipelines");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("org_slug").ShouldBe(org.Slug);
        var pipelines = body.GetProperty("pipelines").EnumerateArray().ToList();
        var paths = pipelines.Select(p => p.Str("pipeline")).ToList();
        paths.ShouldContain(Example);
        paths.ShouldContain(TestPipelines.Rows);
        paths.ShouldNotContain(p => p.StartsWith("setup/", StringComparison.Ordinal) || p.StartsWith("integrations/", StringComparison.Ordinal));
        var example = pipelines.Single(p => p.Str("pipeline") == Example);
        example.Str("run_url").ShouldBe($"/api/v1/pipelines/run/{org.Slug}/{Example}");
        example.GetProperty("max_date_range_days").GetInt32().ShouldBe(31);
        example.GetProperty("steps").EnumerateArray().Select(s => s.GetString()).ShouldBe(["write_validation_rows"]);
    }

    [Fact]
    public async Task ListRuns_Filters_ByStatusPipelineAndSince()
    {
        var org = await Api.OnboardAsync("filter");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        Api.Factory.Clock.Advance(TimeSpan.FromHours(1));
        var since = Api.Factory.Clock.GetUtcNow();
        var rowsA = (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-20" })).Str("pipeline_logging_id");
        var rowsB = (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-21" })).Str("pipeline_logging_id");
        var failed = await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Terminal, new { date = "2025-11-20" });
        failed.Str("status").ShouldBe("FAILED");
        var example = (await Api.RunAndWaitAsync(client, org.Slug, Example, new { date = "2025-11-20" })).Str("pipeline_logging_id");

        (await ListIdsAsync(client, "status=FAILED")).ShouldBe([failed.Str("pipeline_logging_id")]);
        (await ListIdsAsync(client, $"pipeline={TestPipelines.Rows}")).ShouldBe([rowsA, rowsB], ignoreOrder: true);
        (await ListIdsAsync(client, $"pipeline={Example}")).Count.ShouldBe(2, "the validation run of onboarding and this one");
        (await ListIdsAsync(client, $"since={Uri.EscapeDataString(since.ToString("O"))}")).ShouldBe([rowsA, rowsB, failed.Str("pipeline_logging_id"), example], ignoreOrder: true);
        (await ListIdsAsync(client, $"status=COMPLETED&pipeline={Example}&since={Uri.EscapeDataString(since.ToString("O"))}")).ShouldBe([example]);
        (await ListIdsAsync(client, string.Empty)).Count.ShouldBe(6, "onboarding, validation and four runs");
    }

    [Fact]
    public async Task ListRuns_PagedWithLimit2_ReturnsEveryRunOnceNewestFirst()
    {
        var org = await Api.OnboardAsync("paging");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var started = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            Api.Factory.Clock.Advance(TimeSpan.FromSeconds(1));
            started.Add((await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = $"2025-11-2{i}" })).Str("pipeline_logging_id"));
        }

        var all = await ListIdsAsync(client, string.Empty);
        var pages = new List<IReadOnlyList<string>>();
        string? token = null;
        do
        {
            using var response = await client.GetAsync($"/api/v1/pipelines/runs?limit=2{(token is null ? string.Empty : "&page_token=" + Uri.EscapeDataString(token))}");
            var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            pages.Add([.. body.GetProperty("runs").EnumerateArray().Select(r => r.Str("pipeline_logging_id"))]);
            token = body.GetProperty("next_page_token").GetString();
            pages.Count.ShouldBeLessThan(10, "paging must end");
        }
        while (token is not null);

        all.Count.ShouldBe(7, "onboarding, validation and five runs");
        pages.Select(p => p.Count).ShouldBe([2, 2, 2, 1]);
        pages.SelectMany(p => p).ShouldBe(all, "the pages are the unpaged list, in order, without repeats");
        all.Take(5).ShouldBe(Enumerable.Reverse(started), "newest first");
    }

    [Theory]
    [InlineData("not-a-token")]
    [InlineData("!!!")]
    [InlineData("bm8gYmFyIGhlcmU")]
    public async Task ListRuns_InvalidPageToken_Is422(string token)
    {
        var org = await Api.OnboardAsync("token");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await client.GetAsync($"/api/v1/pipelines/runs?limit=2&page_token={Uri.EscapeDataString(token)}");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty("page_token", out _).ShouldBeTrue(problem.Text);
    }

    private static async Task<IReadOnlyList<string>> ListIdsAsync(HttpClient client, string query)
    {
        using var response = await client.GetAsync($"/api/v1/pipelines/runs?limit=200&{query}");
        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("next_page_token").ValueKind.ShouldBe(JsonValueKind.Null);
        return [.. body.GetProperty("runs").EnumerateArray().Select(r => r.Str("pipeline_logging_id"))];
    }

    private long RunCount(string org, string pipeline) =>
        Api.Factory.ControlPlane().Count("org_meta_pipeline_runs", "org_slug = $org AND pipeline_path = $path", ("$org", org), ("$path", pipeline));
}
