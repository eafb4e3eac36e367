using System.Text.Json;
using Convergence.IntegrationTests.Support;
using static Convergence.IntegrationTests.Support.PipelineHarness;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>
/// Each write mode replaces what it should, and a step that fails after writing leaves the destination exactly as it
/// was (the write is one transaction with the step's checks and commit).
/// </summary>
public sealed class WriteModeTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private static readonly object Day = new { date = "2025-11-20" };

    private PipelineHarness Api => fixture.Harness;

    public static TheoryData<string> Modes => [.. TestPipelines.WriteModes];

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task FailAfterWrite_EveryMode_LeavesTheTableUnchanged(string mode)
    {
        var (org, client) = await OrgAsync("atomic");
        await SeedAsync(org, client, mode, [Row("2025-11-20", "a", 1), Row("2025-11-20", "b", 2), Row("2025-11-20", "c", 3)]);
        var before = Api.TableRows(org);
        before.Count.ShouldBe(3);

        // Rows that every mode would apply: new ids, an existing id (upsert), the run's day (merge_partition).
        Api.Probe.For(org).Rows = [Row("2025-11-20", "a", 100), Row("2025-11-20", "x", 7)];
        var run = await Api.RunAndWaitAsync(client, org, TestPipelines.FailPipeline(mode), Day);

        run.Str("status").ShouldBe("FAILED", run.ToString());
        run.Str("error_class").ShouldBe("InvalidOperationException");
        run.Str("error_message").ShouldContain("failing after writing 2 row(s)");
        Api.TableRows(org).ShouldBe(before, $"a failed {mode} must leave the table as it was");
        var step = (await GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().ShouldHaveSingleItem();
        step.Str("status").ShouldBe("FAILED");
        step.GetProperty("attempt").GetInt32().ShouldBe(1, "a terminal failure is not retried");
    }

    [Fact]
    public async Task Append_AddsRowsToWhatIsThere()
    {
        var (org, client) = await OrgAsync("append");
        await SeedAsync(org, client, "append", [Row("2025-11-20", "a", 1)]);

        await WriteAsync(org, client, "append", [Row("2025-11-20", "a", 1), Row("2025-11-21", "b", 2)]);

        Api.TableRows(org).ShouldBe(Expected(Row("2025-11-20", "a", 1), Row("2025-11-20", "a", 1), Row("2025-11-21", "b", 2)));
    }

    [Fact]
    public async Task Truncate_ReplacesEveryRow()
    {
        var (org, client) = await OrgAsync("truncate");
        await SeedAsync(org, client, "append", [Row("2025-11-18", "a", 1), Row("2025-11-19", "b", 2), Row("2025-11-20", "c", 3)]);

        await WriteAsync(org, client, "truncate", [Row("2025-11-01", "x", 9)]);

        Api.TableRows(org).ShouldBe(Expected(Row("2025-11-01", "x", 9)));
    }

    [Fact]
    public async Task Upsert_ReplacesRowsByKeyAndKeepsTheOthers()
    {
        var (org, client) = await OrgAsync("upsert");
        await SeedAsync(org, client, "upsert", [Row("2025-11-20", "a", 1), Row("2025-11-20", "b", 2), Row("2025-11-20", "c", 3)]);

        await WriteAsync(org, client, "upsert", [Row("2025-11-20", "b", 20, "updated"), Row("2025-11-20", "d", 4)]);

        Api.TableRows(org).ShouldBe(Expected(Row("2025-11-20", "a", 1), Row("2025-11-20", "b", 20, "updated"), Row("2025-11-20", "c", 3), Row("2025-11-20", "d", 4)));
    }

    [Fact]
    public async Task ReplacePartitions_ReplacesEveryPartitionWrittenAndKeepsTheOthers()
    {
        var (org, client) = await OrgAsync("replace");
        await SeedAsync(org, client, "append", [Row("2025-11-19", "a", 1), Row("2025-11-20", "b", 2), Row("2025-11-20", "c", 3), Row("2025-11-21", "d", 4)]);

        // Two rows for 11-20 (the second must not delete the first) and one for a new day; 11-19 and 11-21 stay.
        await WriteAsync(org, client, "replace_partitions", [Row("2025-11-20", "x", 20), Row("2025-11-20", "y", 21), Row("2025-11-22", "z", 5)]);

        Api.TableRows(org).ShouldBe(Expected(Row("2025-11-19", "a", 1), Row("2025-11-20", "x", 20), Row("2025-11-20", "y", 21), Row("2025-11-21", "d", 4), Row("2025-11-22", "z", 5)));
    }

    [Fact]
    public async Task MergePartition_ReplacesOnlyTheRunsSlice()
    {
        var (org, client) = await OrgAsync("merge");
        await WriteAsync(org, client, "merge_partition", [Row("2025-11-19", "z", 0)], new { date = "2025-11-19" });
        await WriteAsync(org, client, "merge_partition", [Row("2025-11-20", "a", 1), Row("2025-11-20", "b", 2)]);
        await WriteAsync(org, client, "merge_partition", [Row("2025-11-21", "n", 5)], new { date = "2025-11-21" });

        await WriteAsync(org, client, "merge_partition", [Row("2025-11-20", "c", 3)]);

        Api.TableRows(org).ShouldBe(Expected(Row("2025-11-19", "z", 0), Row("2025-11-20", "c", 3), Row("2025-11-21", "n", 5)));

        await WriteAsync(org, client, "merge_partition", [Row("2025-11-19", "q", 1)], new { start_date = "2025-11-19", end_date = "2025-11-20" });

        Api.TableRows(org).ShouldBe(Expected(Row("2025-11-19", "q", 1), Row("2025-11-21", "n", 5)), "a range run replaces every day of its range");
    }

    [Theory]
    [InlineData("2025-11-21")]
    [InlineData("2025-11-19")]
    public async Task MergePartition_RowOutsideTheSlice_FailsAndChangesNothing(string outside)
    {
        var (org, client) = await OrgAsync("mergeout");
        await SeedAsync(org, client, "merge_partition", [Row("2025-11-20", "a", 1)]);
        await WriteAsync(org, client, "merge_partition", [Row(outside, "o", 1)], new { date = outside });
        var before = Api.TableRows(org);

        Api.Probe.For(org).Rows = [Row("2025-11-20", "b", 2), Row(outside, "c", 3)];
        var run = await Api.RunAndWaitAsync(client, org, TestPipelines.RowsPipeline("merge_partition"), Day);

        run.Str("status").ShouldBe("FAILED", run.ToString());
        run.Str("error_message").ShouldContain("outside the run's slice");
        Api.TableRows(org).ShouldBe(before);
    }

    private async Task<(string Org, HttpClient Client)> OrgAsync(string prefix)
    {
        var org = await Api.OnboardAsync(prefix);
        return (org.Slug, Api.Factory.OrgClient(org.ApiKey));
    }

    private async Task SeedAsync(string org, HttpClient client, string mode, IReadOnlyList<IReadOnlyDictionary<string, object?>> rows) =>
        await WriteAsync(org, client, mode, rows);

    /// <summary>Runs <c>testing/{mode}_rows</c> with <paramref name="rows"/> and asserts it completed.</summary>
    private async Task WriteAsync(string org, HttpClient client, string mode, IReadOnlyList<IReadOnlyDictionary<string, object?>> rows, object? body = null)
    {
        Api.Probe.For(org).Rows = rows;
        var run = await Api.RunAndWaitAsync(client, org, TestPipelines.RowsPipeline(mode), body ?? Day);
        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var step = (await GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().ShouldHaveSingleItem();
        step.GetProperty("rows_processed").GetInt64().ShouldBe(rows.Count);
        step.GetProperty("metadata").ValueKind.ShouldBeOneOf(JsonValueKind.Object, JsonValueKind.Null);
    }

    /// <summary>What <see cref="PipelineHarness.TableRows"/> reads back for these rows.</summary>
    private static IReadOnlyList<string> Expected(params IReadOnlyDictionary<string, object?>[] rows) =>
        [.. rows.Select(r => string.Join("|", r.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={Stored(kv.Value)}"))).Order(StringComparer.Ordinal)];

    private static string? Stored(object? value) => value switch
    {
        DateOnly d => d.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture),
    };
}
