using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>GET /organizations/{org}/comprehensive-view: an org's runs with their steps and data-quality results.</summary>
public sealed class ComprehensiveViewTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task ComprehensiveView_AfterDryRunAndOnboarding_ListsTheirRunsWithStepsAndDqResults()
    {
        var slug = PipelineHarness.NewSlug("view");
        string dryRunId;
        using (var root = Api.Factory.RootClient())
        using (var response = await root.PostJsonAsync("/api/v1/organizations/dryrun", ConvergenceApiFactory.OnboardBody(slug)))
        {
            var dryRun = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            dryRun.GetProperty("ready_for_onboarding").GetBoolean().ShouldBeTrue(dryRun.ToString());
            dryRunId = dryRun.Str("pipeline_logging_id");
        }

        var org = await Api.Factory.OnboardAsync(slug);
        var onboardingId = org.Body.Str("pipeline_logging_id");
        var validation = org.Body.GetProperty("validation_run");
        validation.Str("pipeline").ShouldBe("gcp/example/dryrun");
        validation.Str("status").ShouldBe("COMPLETED", org.Body.ToString());
        var validationId = validation.Str("pipeline_logging_id");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var view = await client.GetAsync($"/api/v1/organizations/{slug}/comprehensive-view");

        var body = await view.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("org_slug").ShouldBe(slug);
        var runs = body.GetProperty("runs").EnumerateArray().ToDictionary(r => r.GetProperty("run").Str("pipeline_logging_id"));
        runs.Keys.ShouldBe([dryRunId, onboardingId, validationId], ignoreOrder: true);
        runs.Values.ShouldAllBe(r => r.GetProperty("run").GetProperty("org_slug").GetString() == slug);

        var dryRunEntry = runs[dryRunId];
        dryRunEntry.GetProperty("run").Str("pipeline").ShouldBe("setup/organizations/dryrun");
        StepStatuses(dryRunEntry).ShouldBe(new Dictionary<string, string> { ["validate_request"] = "COMPLETED" });

        var onboardingEntry = runs[onboardingId];
        onboardingEntry.GetProperty("run").Str("pipeline").ShouldBe("setup/organizations/onboarding");
        onboardingEntry.GetProperty("run").Str("status").ShouldBe("COMPLETED");
        StepStatuses(onboardingEntry).ShouldBe(new Dictionary<string, string> { ["onboard_organization"] = "COMPLETED" });

        var validationEntry = runs[validationId];
        validationEntry.GetProperty("run").Str("pipeline").ShouldBe("gcp/example/dryrun");
        StepStatuses(validationEntry).ShouldBe(new Dictionary<string, string> { ["write_validation_rows"] = "COMPLETED" });
        var dq = validationEntry.GetProperty("dq_results").EnumerateArray().ToList();
        dq.Count.ShouldBe(5, validationEntry.ToString());
        dq.Where(d => d.Str("severity") == "error").ShouldAllBe(d => d.GetProperty("status").GetString() == "PASSED");
        body.GetProperty("next_page_token").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact]
    public async Task ComprehensiveView_OtherOrgsKey_Is403AndRootSeesIt()
    {
        var owner = await Api.OnboardAsync("viewown");
        var other = await Api.OnboardAsync("viewoth");
        using var otherClient = Api.Factory.OrgClient(other.ApiKey);
        using var root = Api.Factory.RootClient();

        using var forbidden = await otherClient.GetAsync($"/api/v1/organizations/{owner.Slug}/comprehensive-view");
        using var allowed = await root.GetAsync($"/api/v1/organizations/{owner.Slug}/comprehensive-view");

        var problem = await forbidden.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        problem.Text.ShouldNotContain(owner.Body.Str("pipeline_logging_id"));
        var body = await allowed.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("run").Str("pipeline_logging_id"))
            .ShouldContain(owner.Body.Str("pipeline_logging_id"));
    }

    [Fact]
    public async Task ComprehensiveView_Paged_ReturnsEveryRunOnce()
    {
        var org = await Api.OnboardAsync("viewpage");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        for (var i = 0; i < 3; i++)
        {
            await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, new { date = $"2025-11-1{i}" });
        }

        var seen = new List<string>();
        string? token = null;
        do
        {
            using var response = await client.GetAsync($"/api/v1/organizations/{org.Slug}/comprehensive-view?limit=2{(token is null ? string.Empty : "&page_token=" + Uri.EscapeDataString(token))}");
            var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            seen.AddRange(body.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("run").Str("pipeline_logging_id")));
            token = body.GetProperty("next_page_token").GetString();
        }
        while (token is not null && seen.Count < 50);

        seen.Count.ShouldBe(5, "onboarding, validation and three runs");
        seen.Distinct().Count().ShouldBe(5);
    }

    private static Dictionary<string, string> StepStatuses(JsonElement entry) =>
        entry.GetProperty("steps").EnumerateArray().ToDictionary(s => s.Str("step_id"), s => s.Str("status"));
}
