using System.Text.Json;
using Convergence.IntegrationTests.Support;
using static Convergence.IntegrationTests.Support.PipelineHarness;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>Data-quality checks run on the step's uncommitted write: errors fail and roll back, warnings are recorded.</summary>
public sealed class DataQualityTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private static readonly object Day = new { date = "2025-11-20" };

    private PipelineHarness Api => fixture.Harness;

    [Fact]
    public async Task ErrorSeverityCheckFails_RunFailsWriteRollsBackAndResultIsRecordedWithSample()
    {
        var org = await Api.OnboardAsync("dqerr");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        Api.Probe.For(org.Slug).Rows = [Row("2025-11-20", "seed", 1)];
        (await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.Rows, Day)).Str("status").ShouldBe("COMPLETED");
        var before = Api.TableRows(org.Slug);

        Api.Probe.For(org.Slug).Rows = [Row("2025-11-20", "b", null, "no amount"), Row("2025-11-20", "c", 2)];
        var run = await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.DqError, Day);

        run.Str("status").ShouldBe("FAILED", run.ToString());
        run.Str("error_class").ShouldBe("DataQualityException");
        run.Str("error_message").ShouldContain("not_null_amount");
        Api.TableRows(org.Slug).ShouldBe(before, "the failed check rolled the write back");

        var id = run.Str("pipeline_logging_id");
        var steps = await GetStepsAsync(client, id);
        var byId = steps.GetProperty("steps").EnumerateArray().ToDictionary(s => s.Str("step_id"));
        byId["write_rows"].Str("status").ShouldBe("FAILED");
        byId["write_rows"].Str("error_class").ShouldBe("DataQualityException");
        byId["write_rows"].GetProperty("attempt").GetInt32().ShouldBe(1);
        byId["after"].Str("status").ShouldBe("SKIPPED");

        var dq = steps.GetProperty("dq_results").EnumerateArray().ToDictionary(d => d.Str("check_name"));
        dq["row_count_min"].Str("status").ShouldBe("PASSED");
        var failed = dq["not_null_amount"];
        failed.Str("status").ShouldBe("FAILED");
        failed.Str("severity").ShouldBe("error");
        failed.Str("observed_value").ShouldBe("1 failing row(s)");
        var sample = failed.GetProperty("failing_sample").EnumerateArray().ShouldHaveSingleItem();
        sample.Str("id").ShouldBe("b");
        sample.GetProperty("amount").ValueKind.ShouldBe(JsonValueKind.Null);

        var stored = Api.Factory.ControlPlane().Rows(
            "SELECT status, severity, table_name, failing_sample, org_slug, step_logging_id FROM org_meta_dq_results WHERE pipeline_logging_id = $id AND check_name = 'not_null_amount'",
            ("$id", id)).ShouldHaveSingleItem();
        stored["status"].ShouldBe("FAILED");
        stored["severity"].ShouldBe("error");
        stored["table_name"].ShouldBe(TestPipelines.Table);
        stored["org_slug"].ShouldBe(org.Slug);
        stored["step_logging_id"].ShouldBe(byId["write_rows"].Str("step_logging_id"));
        ((string)stored["failing_sample"]!).ShouldContain("\"b\"");
    }

    [Fact]
    public async Task WarnSeverityCheckFails_RecordedAsFailedButRunCompletesAndRowsAreCommitted()
    {
        var org = await Api.OnboardAsync("dqwarn");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        Api.Probe.For(org.Slug).Rows = [Row("2025-11-20", "b", null), Row("2025-11-20", "c", 2)];

        var run = await Api.RunAndWaitAsync(client, org.Slug, TestPipelines.DqWarn, Day);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Api.TableRows(org.Slug).Count.ShouldBe(2, "a warning does not roll back");
        var steps = await GetStepsAsync(client, run.Str("pipeline_logging_id"));
        steps.GetProperty("steps").EnumerateArray().ShouldHaveSingleItem().Str("status").ShouldBe("COMPLETED");
        var dq = steps.GetProperty("dq_results").EnumerateArray().ToDictionary(d => d.Str("check_name"));
        dq["not_null_amount"].Str("status").ShouldBe("FAILED");
        dq["not_null_amount"].Str("severity").ShouldBe("warn");
        dq["not_null_amount"].GetProperty("failing_sample").EnumerateArray().ShouldHaveSingleItem().Str("id").ShouldBe("b");
        dq["row_count_min"].Str("status").ShouldBe("PASSED");
        Api.Factory.ControlPlane().Count(
            "org_meta_dq_results", "pipeline_logging_id = $id AND status = 'FAILED' AND severity = 'warn'", ("$id", run.Str("pipeline_logging_id"))).ShouldBe(1);
    }
}
