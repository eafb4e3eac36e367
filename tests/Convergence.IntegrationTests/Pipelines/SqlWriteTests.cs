using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>The SQL path of the write modes: gcp.bq_etl writing a query's result (IWarehouseWrite.WriteQueryAsync).</summary>
public sealed class SqlWriteTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task SqlMergePartition_RerunsReplaceTheDay()
    {
        var org = await Api.OnboardAsync("sqlmerge");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        await CompletedAsync(client, org.Slug, TestPipelines.SqlMerge, new { date = "2025-11-19", event_date = "2025-11-19" });
        await CompletedAsync(client, org.Slug, TestPipelines.SqlMerge, new { date = "2025-11-20", event_date = "2025-11-20" });
        var last = await CompletedAsync(client, org.Slug, TestPipelines.SqlMerge, new { date = "2025-11-20", event_date = "2025-11-20" });

        var rows = Api.TableRows(org.Slug);
        rows.Count.ShouldBe(2);
        rows.ShouldContain(r => r.Contains("event_date=2025-11-20") && r.Contains($"id={last}"));
    }

    [Fact]
    public async Task SqlMergePartition_QueryRowOutsideTheSlice_FailsAndChangesNothing()
    {
        var org = await Api.OnboardAsync("sqlout");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        await CompletedAsync(client, org.Slug, TestPipelines.SqlMerge, new { date = "2025-11-20", event_date = "2025-11-20" });
        var before = Api.TableRows(org.Slug);

        var run = await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.SqlMerge, new { date = "2025-11-20", event_date = "2025-11-21" });

        run.Str("status").ShouldBe("FAILED", run.ToString());
        run.Str("error_message").ShouldContain("outside the run's slice");
        Api.TableRows(org.Slug).ShouldBe(before);
    }

    [Fact]
    public async Task SqlUpsert_ReplacesByKey()
    {
        var org = await Api.OnboardAsync("sqlups");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        await CompletedAsync(client, org.Slug, TestPipelines.SqlUpsert, new { date = "2025-11-20", id = "a", amount = "1" });
        await CompletedAsync(client, org.Slug, TestPipelines.SqlUpsert, new { date = "2025-11-20", id = "b", amount = "2" });
        await CompletedAsync(client, org.Slug, TestPipelines.SqlUpsert, new { date = "2025-11-21", id = "a", amount = "10" });

        Api.TableRows(org.Slug).ShouldBe([
            "amount=10|event_date=2025-11-21|id=a|note=sql",
            "amount=2|event_date=2025-11-20|id=b|note=sql",
        ]);
    }

    [Fact]
    public async Task SqlWrite_QueryWithoutANullableColumn_WritesNullLikeRowWrites()
    {
        var org = await Api.OnboardAsync("sqlpart");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        var run = await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.SqlPartialColumns, new { date = "2025-11-20" });

        // Regression: a query that left out a NULLABLE column failed with "no such column", while row writes write NULL.
        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Api.TableRows(org.Slug).ShouldBe(["amount=1|event_date=2025-11-20|id=partial|note="]);
    }

    private async Task<string> CompletedAsync(HttpClient client, string org, string pipeline, object body)
    {
        var run = await Api.RunAndWaitAsync(client, org, pipeline, body);
        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        return run.Str("pipeline_logging_id");
    }
}
