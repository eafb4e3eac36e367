using System.Globalization;
using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;
using static Convergence.IntegrationTests.Support.PipelineHarness;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>
/// configs/gcp/billing.yml through the run API: GCP billing export files from the import folder into
/// gcp_billing_daily_raw, credits netted exactly, re-loads replacing by billing account and usage day.
/// </summary>
/// <remarks>
/// Hand totals of <c>Fixtures/gcp/gcp_billing_export_sample.csv</c> (25 rows, account 000000-B0BBA4-940A77, 2020-11-08..11):
/// <code>
/// day         rows  cost (rows with cost)                           credits      net
/// 2020-11-08    9   5e-06 + 5e-06 + 1e-06 + 5e-06 = 0.000016       -0.000016    0
/// 2020-11-09    8   5e-06                          = 0.000005       -0.000005    0
/// 2020-11-10    5   5e-06 + 5e-06 + 1e-06          = 0.000011       -0.000011    0
/// 2020-11-11    3   0                                               0            0
/// total        25                                    0.000032       -0.000032    0
/// </code>
/// Every cost in the sample is fully offset by a FreeTrial credit, so the netted total is exactly 0.
/// The correction (account 000000…, 2020-11-10) has cost 1.234567 with credits -0.5 and -0.034567 (net 0.7), and cost
/// 0.000011 with credit -0.000011 (net 0): the day becomes 2 rows, cost 1.234578, credits -0.534578, net 0.700000.
/// The second account (000001-C1CCB5-051B88, 2020-11-10) has cost 2.5 with credit -0.25 and cost 0.1: net 2.35.
/// </remarks>
public sealed class GcpBillingFileTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string Pipeline = "gcp/billing";
    private const string Table = "gcp_billing_daily_raw";
    private const string Account = "000000-B0BBA4-940A77";
    private const string SecondAccount = "000001-C1CCB5-051B88";

    private PipelineHarness Api => fixture.Harness;

    private string ImportDirectory => Path.Combine(Api.Factory.DataDirectory, "imports");

    [Fact]
    public async Task Sample_LoadsEveryRowWithCreditsNettedExactly()
    {
        var (org, client) = await OrgAsync("gcpload");
        var uri = Import(org, "gcp_billing_export_sample.csv");

        var run = await LoadAsync(client, org, uri);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var rows = Rows(org);
        rows.Count.ShouldBe(25);
        Sum(rows, "cost").ShouldBe(0.000032m);
        Sum(rows, "credits_total").ShouldBe(-0.000032m);
        Sum(rows, "cost_after_credits").ShouldBe(0m);
        ByDay(rows, Account).ShouldBe(new SortedDictionary<string, (int, decimal, decimal)>(StringComparer.Ordinal)
        {
            ["2020-11-08"] = (9, 0.000016m, 0m),
            ["2020-11-09"] = (8, 0.000005m, 0m),
            ["2020-11-10"] = (5, 0.000011m, 0m),
            ["2020-11-11"] = (3, 0m, 0m),
        });

        // Line 2: the first data row, with its credit and exact amounts kept as decimal text.
        var first = rows.Single(r => (long)r["source_line"]! == 2);
        first["cost"].ShouldBe("0.000005");
        first["usage_amount_in_pricing_units"].ShouldBe("0.000023198314011096954");
        first["usage_start_time"].ShouldBe("2020-11-09T23:00:00.0000000Z");
        first["source_uri"].ShouldBe(uri);
        using (var credits = JsonDocument.Parse((string)first["credits"]!))
        {
            var credit = credits.RootElement.EnumerateArray().ShouldHaveSingleItem();
            credit.GetProperty("amount").GetRawText().ShouldBe("-0.000005");
            credit.GetProperty("type").GetString().ShouldBe("PROMOTION");
            credit.GetProperty("full_name").ValueKind.ShouldBe(JsonValueKind.Null);
        }

        var labelled = rows.Single(r => (long)r["source_line"]! == 5);
        labelled["labels"].ShouldBeJson("""{"goog-resource-type":"bigquery_resource"}""");
        labelled["system_labels"].ShouldBe("{}");

        var steps = (await GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().ToList();
        steps.Single(st => st.Str("step_id") == "load_billing_export").GetProperty("rows_processed").GetInt64().ShouldBe(25);

        // focus.normalize mapped every row to FOCUS 1.2 (its validator passed, or the step would have failed):
        // billed = Σ cost = 0.000032, effective = Σ (cost + credits) = 0, all in Cloud Storage / BigQuery's categories.
        steps.Single(st => st.Str("step_id") == "focus").GetProperty("rows_processed").GetInt64().ShouldBe(25);
        var costs = await (await client.GetAsync($"/api/v1/data/{org}/costs/daily?start_date=2020-11-01&end_date=2020-11-30&group_by=provider")).ShouldBeJsonAsync(HttpStatusCode.OK);
        var gcp = costs.GetProperty("rows").EnumerateArray().ShouldHaveSingleItem();
        (gcp.Str("provider"), gcp.GetProperty("billed_cost").GetDecimal(), gcp.GetProperty("effective_cost").GetDecimal()).ShouldBe(("gcp", 0.000032m, 0m));
    }

    [Fact]
    public async Task LateCorrection_ReplacesOnlyThatAccountAndDay()
    {
        var (org, client) = await OrgAsync("gcpfix");
        (await LoadAsync(client, org, Import(org, "gcp_billing_export_sample.csv"))).Str("status").ShouldBe("COMPLETED");
        (await LoadAsync(client, org, Import(org, "gcp_billing_export_second_account.csv"))).Str("status").ShouldBe("COMPLETED");

        var run = await LoadAsync(client, org, Import(org, "gcp_billing_export_correction.csv"));

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var rows = Rows(org);
        ByDay(rows, Account).ShouldBe(new SortedDictionary<string, (int, decimal, decimal)>(StringComparer.Ordinal)
        {
            ["2020-11-08"] = (9, 0.000016m, 0m),
            ["2020-11-09"] = (8, 0.000005m, 0m),
            ["2020-11-10"] = (2, 1.234578m, 0.7m),
            ["2020-11-11"] = (3, 0m, 0m),
        });
        ByDay(rows, SecondAccount).ShouldBe(new SortedDictionary<string, (int, decimal, decimal)>(StringComparer.Ordinal) { ["2020-11-10"] = (2, 2.6m, 2.35m) });
        rows.Count.ShouldBe(24);
        Sum(rows, "credits_total").ShouldBe(-0.784599m);
        Sum(rows, "cost_after_credits").ShouldBe(3.05m);

        var corrected = rows.Single(r => (string)r["billing_account_id"]! == Account && (string)r["cost"]! == "1.234567");
        corrected["credits_total"].ShouldBe("-0.534567");
        corrected["cost_after_credits"].ShouldBe("0.700000");
        corrected["labels"].ShouldBeJson("""{"team":"o\u0027brien","env":"prod"}""");
    }

    [Fact]
    public async Task Rerun_OfTheSameFile_LeavesTheSameRows()
    {
        var (org, client) = await OrgAsync("gcprerun");
        var uri = Import(org, "gcp_billing_export_sample.csv");
        (await LoadAsync(client, org, uri)).Str("status").ShouldBe("COMPLETED");
        var first = Snapshot(org);

        (await LoadAsync(client, org, uri)).Str("status").ShouldBe("COMPLETED");

        Snapshot(org).ShouldBe(first);
        first.Count.ShouldBe(25);
    }

    [Fact]
    public async Task MalformedRow_FailsTheRunNamingFileLineAndColumn_AndWritesNothing()
    {
        var (org, client) = await OrgAsync("gcpbad");
        (await LoadAsync(client, org, Import(org, "gcp_billing_export_sample.csv"))).Str("status").ShouldBe("COMPLETED");
        var before = Snapshot(org);
        var uri = Import(org, "gcp_billing_export_malformed.csv");

        var run = await LoadAsync(client, org, uri);

        run.Str("status").ShouldBe("FAILED", run.ToString());
        run.Str("error_class").ShouldBe("RequestValidationException");
        var message = run.Str("error_message");
        message.ShouldContain("source_uri");
        message.ShouldContain($"{uri} line 4, column 19 (cost)");
        message.ShouldContain("'0.0O5' is not a decimal number");
        Snapshot(org).ShouldBe(before, "a failed load must leave the table as it was");
    }

    [Fact]
    public async Task FocusRuleViolation_LateInTheSlice_FailsTheFocusStepAndLeavesTheUnifiedTableAsItWas()
    {
        var (org, client) = await OrgAsync("gcpfocus");
        (await LoadAsync(client, org, Import(org, "gcp_billing_export_sample.csv"))).Str("status").ShouldBe("COMPLETED");
        var focus = Api.Factory.Warehouse(org);
        string[] FocusRows() =>
            [.. focus.Rows("SELECT * FROM cost_focus_daily").Select(r => string.Join("|", r.Where(kv => kv.Key != "pipeline_logging_id").OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"))).Order(StringComparer.Ordinal)];
        var before = FocusRows();
        before.Length.ShouldBe(25);

        // The sample with its last line billed in "usd": the loader keeps the text, FOCUS requires an ISO 4217 code.
        // The focus step streams rows into its write; the earlier days' rows reach the write before the bad one is seen.
        var lines = File.ReadAllLines(Path.Combine(FixtureDirectory, "gcp_billing_export_sample.csv"));
        lines[^1].ShouldContain(",USD,1.0,");
        lines[^1] = lines[^1].Replace(",USD,1.0,", ",usd,1.0,", StringComparison.Ordinal);
        File.WriteAllLines(Path.Combine(ImportDirectory, org, "lowercase_currency.csv"), lines);

        var run = await LoadAsync(client, org, $"{org}/lowercase_currency.csv");

        run.Str("status").ShouldBe("FAILED", run.ToString());
        run.Str("error_message").ShouldContain("1 FOCUS 1.2 rule violation(s); nothing was written");
        run.Str("error_message").ShouldContain("'usd' is not an ISO 4217 alphabetic code");
        var steps = (await GetStepsAsync(client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().ToDictionary(s => s.Str("step_id"), s => s.Str("status"));
        steps["load_billing_export"].ShouldBe("COMPLETED");
        steps["focus"].ShouldBe("FAILED");
        FocusRows().ShouldBe(before, "the unified table keeps the last good rebuild");
    }

    [Fact]
    public async Task JsonLines_EqualsTheCsvRowForRow()
    {
        var (csvOrg, csvClient) = await OrgAsync("gcpcsv");
        var (jsonOrg, jsonClient) = await OrgAsync("gcpjson");
        (await LoadAsync(csvClient, csvOrg, Import(csvOrg, "gcp_billing_export_sample.csv"))).Str("status").ShouldBe("COMPLETED");

        var run = await LoadAsync(jsonClient, jsonOrg, Import(jsonOrg, "gcp_billing_export_sample.jsonl"));

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var csv = Rows(csvOrg);
        var json = Rows(jsonOrg);
        json.Count.ShouldBe(csv.Count);
        foreach (var column in new[] { "cost", "credits_total", "cost_after_credits" })
        {
            Sum(json, column).ShouldBe(Sum(csv, column), column);
        }

        // Every column but the file's name, its line (the CSV has a header) and the CSV-only partition_date matches.
        string[] ignored = ["source_uri", "source_line", "partition_date"];
        string Key(Dictionary<string, object?> r) => string.Join("|", r.Where(kv => !ignored.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));
        json.Select(Key).Order(StringComparer.Ordinal).ShouldBe(csv.Select(Key).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("../outside.csv")]
    [InlineData("sub/../../outside.csv")]
    [InlineData("/etc/passwd")]
    [InlineData("~/outside.csv")]
    [InlineData("file:///etc/passwd")]
    [InlineData("https://example.com/export.csv")]
    [InlineData("gs://bucket/export.csv")]
    [InlineData("C:\\exports\\x.csv")]
    [InlineData("..\\outside.csv")]
    [InlineData("")]
    [InlineData("missing/none.csv")]
    [InlineData("imports-folder")]
    public async Task UnsafeOrMissingSourceUri_Is422NamingSourceUri_AndQueuesNothing(string sourceUri)
    {
        var (org, client) = await OrgAsync("gcpuri");
        Directory.CreateDirectory(Path.Combine(ImportDirectory, "imports-folder"));
        File.WriteAllText(Path.Combine(Api.Factory.DataDirectory, "outside.csv"), "secret");

        await ShouldBeRejectedAsync(client, org, sourceUri);
    }

    [Fact]
    public async Task SymbolicLinksLeadingOutOfTheImportFolder_Are422()
    {
        var (org, client) = await OrgAsync("gcplink");
        var outside = Path.Combine(Api.Factory.DataDirectory, "outside-" + org);
        Directory.CreateDirectory(outside);
        File.Copy(Path.Combine(FixtureDirectory, "gcp_billing_export_sample.csv"), Path.Combine(outside, "export.csv"));
        var folder = Path.Combine(ImportDirectory, org);
        Directory.CreateDirectory(folder);
        File.CreateSymbolicLink(Path.Combine(folder, "file-link.csv"), Path.Combine(outside, "export.csv"));
        Directory.CreateSymbolicLink(Path.Combine(folder, "dir-link"), outside);
        File.CreateSymbolicLink(Path.Combine(folder, "relative-link.csv"), Path.Combine("..", "..", "outside-" + org, "export.csv"));

        await ShouldBeRejectedAsync(client, org, $"{org}/file-link.csv");
        await ShouldBeRejectedAsync(client, org, $"{org}/dir-link/export.csv");
        await ShouldBeRejectedAsync(client, org, $"{org}/relative-link.csv");

        // A link that stays inside the folder is fine.
        File.Copy(Path.Combine(FixtureDirectory, "gcp_billing_export_sample.csv"), Path.Combine(folder, "real.csv"));
        File.CreateSymbolicLink(Path.Combine(folder, "inside-link.csv"), "real.csv");
        (await LoadAsync(client, org, $"{org}/inside-link.csv")).Str("status").ShouldBe("COMPLETED");
    }

    [Fact]
    public async Task RowsOutsideTheRunsDates_AreSkipped_AndNoneInside_Is422()
    {
        var (org, client) = await OrgAsync("gcpslice");
        var uri = Import(org, "gcp_billing_export_sample.csv");

        var run = await LoadAsync(client, org, uri, "2020-11-09", "2020-11-09");
        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Rows(org).Count.ShouldBe(8);

        var none = await LoadAsync(client, org, uri, "2021-01-01", "2021-01-02");
        none.Str("status").ShouldBe("FAILED");
        none.Str("error_message").ShouldContain("none of the 25 rows");
        Rows(org).Count.ShouldBe(8);
    }

    private static string FixtureDirectory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "gcp");

    private async Task ShouldBeRejectedAsync(HttpClient client, string org, string sourceUri)
    {
        var runsBefore = Api.Factory.ControlPlane().CountForOrg("org_meta_pipeline_runs", org);
        using var response = await PostRunAsync(client, org, Pipeline, new Dictionary<string, string> { ["source_uri"] = sourceUri, ["start_date"] = "2020-11-08", ["end_date"] = "2020-11-11" });
        var body = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        body.Json.GetProperty("errors").TryGetProperty("source_uri", out _).ShouldBeTrue(body.Text);
        Api.Factory.ControlPlane().CountForOrg("org_meta_pipeline_runs", org).ShouldBe(runsBefore, "a rejected request queues no run");
    }

    private async Task<(string Org, HttpClient Client)> OrgAsync(string prefix)
    {
        var org = await Api.OnboardAsync(prefix);
        return (org.Slug, Api.Factory.OrgClient(org.ApiKey));
    }

    /// <summary>Copies a fixture into the org's folder of the import folder; returns its source_uri.</summary>
    private string Import(string org, string fixture)
    {
        var folder = Path.Combine(ImportDirectory, org);
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(FixtureDirectory, fixture), Path.Combine(folder, fixture), overwrite: true);
        return $"{org}/{fixture}";
    }

    private async Task<JsonElement> LoadAsync(HttpClient client, string org, string uri, string start = "2020-11-08", string end = "2020-11-11") =>
        await Api.RunAndWaitAsync(client, org, Pipeline, new Dictionary<string, string> { ["source_uri"] = uri, ["start_date"] = start, ["end_date"] = end });

    private IReadOnlyList<Dictionary<string, object?>> Rows(string org)
    {
        var db = Api.Factory.Warehouse(org);
        return db.Exists && db.Tables().Contains(Table) ? db.Rows($"SELECT * FROM {Table}") : [];
    }

    private IReadOnlyList<string> Snapshot(string org) =>
        [.. Rows(org).Select(r => string.Join("|", r.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"))).Order(StringComparer.Ordinal)];

    private static decimal Dec(object? value) => decimal.Parse((string)value!, NumberStyles.Float, CultureInfo.InvariantCulture);

    private static decimal Sum(IEnumerable<Dictionary<string, object?>> rows, string column) => rows.Sum(r => Dec(r[column]));

    /// <summary>Rows, cost and net cost by usage day (decimals compared by value, so 0.0 equals 0).</summary>
    private static SortedDictionary<string, (int Rows, decimal Cost, decimal Net)> ByDay(IEnumerable<Dictionary<string, object?>> rows, string account) =>
        new(rows.Where(r => (string)r["billing_account_id"]! == account)
            .GroupBy(r => (string)r["usage_date"]!)
            .ToDictionary(g => g.Key, g => (g.Count(), Sum(g, "cost"), Sum(g, "cost_after_credits"))), StringComparer.Ordinal);
}
