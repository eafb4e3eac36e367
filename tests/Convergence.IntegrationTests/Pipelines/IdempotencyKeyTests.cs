using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>The Idempotency-Key of the run API: one run per org and key, replayed rather than repeated.</summary>
public sealed class IdempotencyKeyTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private static readonly object Body = new { date = "2025-11-20" };

    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task Run_SameKeyAndBody_Is409WhileRunningThen200WithTheSameRun()
    {
        var org = await Api.OnboardAsync("idem");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var key = "nightly-" + Guid.NewGuid().ToString("N");
        var first = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Block, Body, key);
        await Api.Probe.For(org.Slug).Blocked.WaitAsync(PipelineHarness.Patience);

        using (var whileRunning = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Block, Body, key))
        {
            var problem = await whileRunning.ShouldBeProblemAsync(HttpStatusCode.Conflict);
            problem.Json.Str("pipeline_logging_id").ShouldBe(first);
            problem.Json.Str("run_status").ShouldBe("RUNNING");
        }

        Api.Probe.For(org.Slug).Release();
        (await Api.WaitForRunAsync(client, first)).Str("status").ShouldBe("COMPLETED");

        using (var afterwards = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Block, Body, key))
        {
            var replay = await afterwards.ShouldBeJsonAsync(HttpStatusCode.OK);
            replay.Str("pipeline_logging_id").ShouldBe(first);
            replay.Str("status").ShouldBe("COMPLETED");
        }

        RunsWithKey(org.Slug, key).ShouldBe(1);
        Api.Factory.ControlPlane().Count("org_meta_pipeline_runs", "org_slug = $org AND pipeline_path = $path", ("$org", org.Slug), ("$path", TestPipelines.Block)).ShouldBe(1);
        Api.Probe.For(org.Slug).Calls.Count(c => c.StepId == "wait").ShouldBe(1, "the replay ran nothing");
    }

    [Fact]
    public async Task Run_SameKeyDifferentBody_Is422NamingTheKey()
    {
        var org = await Api.OnboardAsync("idem");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var key = Guid.NewGuid().ToString("N");
        var first = await PipelineHarness.StartRunAsync(client, org.Slug, TestPipelines.Rows, Body, key);
        await Api.WaitForRunAsync(client, first);

        using var otherDate = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, new { date = "2025-11-21" }, key);
        using var otherPipeline = await PipelineHarness.PostRunAsync(client, org.Slug, "gcp/example/dryrun", Body, key);

        foreach (var response in new[] { otherDate, otherPipeline })
        {
            var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").TryGetProperty("Idempotency-Key", out var errors).ShouldBeTrue(problem.Text);
            errors[0].GetString().ShouldNotBeNull().ShouldContain(first);
        }

        RunsWithKey(org.Slug, key).ShouldBe(1);
    }

    [Fact]
    public async Task Run_SameKeyInAnotherOrg_IsANewRun()
    {
        var acme = await Api.OnboardAsync("acme");
        var globex = await Api.OnboardAsync("globex");
        using var acmeClient = Api.Factory.OrgClient(acme.ApiKey);
        using var globexClient = Api.Factory.OrgClient(globex.ApiKey);
        var key = Guid.NewGuid().ToString("N");

        var acmeRun = await PipelineHarness.StartRunAsync(acmeClient, acme.Slug, TestPipelines.Rows, Body, key);
        var globexRun = await PipelineHarness.StartRunAsync(globexClient, globex.Slug, TestPipelines.Rows, Body, key);

        globexRun.ShouldNotBe(acmeRun);
        (await Api.WaitForRunAsync(acmeClient, acmeRun)).Str("org_slug").ShouldBe(acme.Slug);
        (await Api.WaitForRunAsync(globexClient, globexRun)).Str("org_slug").ShouldBe(globex.Slug);
        RunsWithKey(acme.Slug, key).ShouldBe(1);
        RunsWithKey(globex.Slug, key).ShouldBe(1);
    }

    [Fact]
    public async Task Run_ConcurrentRequestsWithOneKey_AdmitExactlyOneRun()
    {
        var org = await Api.OnboardAsync("idemcon");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var key = Guid.NewGuid().ToString("N");

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Block, Body, key)));

        try
        {
            responses.Count(r => r.StatusCode == HttpStatusCode.Accepted).ShouldBe(1, string.Join(", ", responses.Select(r => (int)r.StatusCode)));
            var others = responses.Where(r => r.StatusCode is not (HttpStatusCode.Accepted or HttpStatusCode.Conflict)).ToList();
            others.ShouldBeEmpty(string.Join("; ", await Task.WhenAll(others.Select(async r => $"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}"))));
            var admitted = (await responses.Single(r => r.StatusCode == HttpStatusCode.Accepted).ShouldBeJsonAsync(HttpStatusCode.Accepted)).Str("pipeline_logging_id");
            foreach (var conflict in responses.Where(r => r.StatusCode == HttpStatusCode.Conflict))
            {
                (await conflict.ShouldBeProblemAsync(HttpStatusCode.Conflict)).Json.Str("pipeline_logging_id").ShouldBe(admitted);
            }

            RunsWithKey(org.Slug, key).ShouldBe(1);
            Api.Probe.For(org.Slug).Release();
            (await Api.WaitForRunAsync(client, admitted)).Str("status").ShouldBe("COMPLETED");
        }
        finally
        {
            Api.Probe.For(org.Slug).Release();
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("tab\tkey")]
    [InlineData("ключ")]
    public async Task Run_InvalidKey_Is422(string key)
    {
        var org = await Api.OnboardAsync("idem");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, TestPipelines.Rows, Body, key);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty("Idempotency-Key", out _).ShouldBeTrue(problem.Text);
    }

    private long RunsWithKey(string org, string key) =>
        Api.Factory.ControlPlane().Count("org_meta_pipeline_runs", "org_slug = $org AND idempotency_key = $key", ("$org", org), ("$key", key));
}
