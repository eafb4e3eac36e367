using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>Reruns of gcp/example/dryrun (merge_partition on run_date) never duplicate rows: each replaces its slice.</summary>
public sealed class RerunIdempotencyTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string Example = "gcp/example/dryrun";
    private const string Table = "onboarding_validation_test";

    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task RunExample_SameRangeOnceOrThreeTimes_LeavesIdenticalRows()
    {
        var once = await Api.OnboardAsync("once");
        var thrice = await Api.OnboardAsync("thrice");
        var range = new { start_date = "2025-11-01", end_date = "2025-11-10" };

        using var onceClient = Api.Factory.OrgClient(once.ApiKey);
        (await Api.RunAndWaitAsync(onceClient, once.Slug, Example, range)).Str("status").ShouldBe("COMPLETED");
        using var thriceClient = Api.Factory.OrgClient(thrice.ApiKey);
        string last = string.Empty;
        for (var i = 0; i < 3; i++)
        {
            var run = await Api.RunAndWaitAsync(thriceClient, thrice.Slug, Example, range);
            run.Str("status").ShouldBe("COMPLETED", run.ToString());
            last = run.Str("pipeline_logging_id");
        }

        var onceDays = Days(once.Slug, "2025-11-01", "2025-11-30");
        var thriceDays = Days(thrice.Slug, "2025-11-01", "2025-11-30");
        onceDays.Select(d => d.Date).ShouldBe(Enumerable.Range(1, 10).Select(d => $"2025-11-{d:D2}"));
        thriceDays.Select(d => d.Date).ShouldBe(onceDays.Select(d => d.Date));
        thriceDays.ShouldAllBe(d => d.RunId == last, "the last run replaced the slice");
        Count(once.Slug).ShouldBe(Count(thrice.Slug), "both hold the range plus onboarding's validation row");
        Count(thrice.Slug).ShouldBe(11);
    }

    [Fact]
    public async Task RunExample_OverlappingRanges_ReplaceExactlyTheirSlice()
    {
        var org = await Api.OnboardAsync("overlap");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        var first = (await Api.RunAndWaitAsync(client, org.Slug, Example, new { start_date = "2025-11-01", end_date = "2025-11-10" })).Str("pipeline_logging_id");
        var second = (await Api.RunAndWaitAsync(client, org.Slug, Example, new { start_date = "2025-11-08", end_date = "2025-11-15" })).Str("pipeline_logging_id");

        var days = Days(org.Slug, "2025-11-01", "2025-11-30");
        days.Select(d => d.Date).ShouldBe(Enumerable.Range(1, 15).Select(d => $"2025-11-{d:D2}"));
        days.Where(d => string.CompareOrdinal(d.Date, "2025-11-08") < 0).ShouldAllBe(d => d.RunId == first);
        days.Where(d => string.CompareOrdinal(d.Date, "2025-11-08") >= 0).ShouldAllBe(d => d.RunId == second);

        var third = (await Api.RunAndWaitAsync(client, org.Slug, Example, new { date = "2025-11-03" })).Str("pipeline_logging_id");

        var after = Days(org.Slug, "2025-11-01", "2025-11-30");
        after.Count.ShouldBe(15);
        after.Single(d => d.Date == "2025-11-03").RunId.ShouldBe(third);
        after.Where(d => d.Date != "2025-11-03").ShouldBe(days.Where(d => d.Date != "2025-11-03"), "the other days are untouched");
    }

    private IReadOnlyList<(string Date, string RunId)> Days(string org, string from, string to) =>
        [.. Api.Factory.Warehouse(org)
            .Rows($"SELECT run_date, pipeline_logging_id FROM {Table} WHERE run_date BETWEEN '{from}' AND '{to}' ORDER BY run_date")
            .Select(r => ((string)r["run_date"]!, (string)r["pipeline_logging_id"]!))];

    private long Count(string org) => Api.Factory.Warehouse(org).Count(Table);
}
