using System.Globalization;
using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;
using static Convergence.IntegrationTests.Gcp.BigQueryBillingExport;
using static Convergence.IntegrationTests.Support.FakeBigQueryResult;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>
/// An API on a manual clock whose GCP token endpoint and BigQuery point at <see cref="FakeBigQuery"/>, with a test
/// pipeline (<c>testing/bq_rows</c>) loading a query's columns by name into a table of every column type.
/// </summary>
public sealed class BigQueryFixture : IAsyncLifetime
{
    public const string RowsPipeline = "testing/bq_rows";

    private static readonly Dictionary<string, string> ExtraConfigs = new(StringComparer.Ordinal)
    {
        ["testing/schemas/bq_typed.json"] = """
            {"table": "bq_typed", "columns": [
              {"name": "day", "type": "DATE", "mode": "REQUIRED"},
              {"name": "name", "type": "STRING", "mode": "NULLABLE"},
              {"name": "count", "type": "INT64", "mode": "NULLABLE"},
              {"name": "ratio", "type": "FLOAT64", "mode": "NULLABLE"},
              {"name": "amount", "type": "NUMERIC", "mode": "NULLABLE"},
              {"name": "flag", "type": "BOOL", "mode": "NULLABLE"},
              {"name": "seen_at", "type": "TIMESTAMP", "mode": "NULLABLE"},
              {"name": "local_at", "type": "TIMESTAMP", "mode": "NULLABLE"},
              {"name": "attributes", "type": "JSON", "mode": "NULLABLE"},
              {"name": "tags", "type": "JSON", "mode": "NULLABLE"}
            ]}
            """,
        ["testing/bq_rows.yml"] = """
            pipeline_id: "{org_slug}-testing-bq-rows"
            steps:
              - step_id: decrypt_credential
                ps_type: integrations.kms_decrypt
                config: { provider: gcp }
              - step_id: load
                ps_type: gcp.bq_etl
                depends_on: [decrypt_credential]
                destination: { table: bq_typed, write_mode: merge_partition, partition_column: day }
                config:
                  source: bigquery
                  credential_step: decrypt_credential
                  project_id: acme-analytics
                  page_size: 500
                  query: SELECT * FROM usage WHERE day BETWEEN {start_date} AND {end_date} AND org = {org_slug}
            """,
    };

    public FakeBigQuery Fake { get; private set; } = null!;

    public PipelineHarness Harness { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Fake = await FakeBigQuery.StartAsync();
        Harness = new PipelineHarness(
            manualClock: true,
            new Dictionary<string, string?>
            {
                ["GCP_TOKEN_URL"] = Fake.TokenUrl.AbsoluteUri,
                ["BIGQUERY_BASE_URL"] = Fake.BigQueryBase.AbsoluteUri,
                ["BIGQUERY_LOCATION"] = "EU",
                // A hanging BigQuery is cut after 1 s (server wait) + 1 s of real time: the request timeout is not on the manual clock.
                ["INTEGRATION_CHECK_TIMEOUT_SECONDS"] = "1",
                ["Logging:LogLevel:Default"] = "Trace",
                ["Logging:LogLevel:Microsoft"] = "Trace",
                ["Logging:LogLevel:System"] = "Trace",
            },
            ExtraConfigs);
        await Harness.Factory.BootstrapAsync();
    }

    public async Task DisposeAsync()
    {
        await Harness.DisposeAsync();
        await Fake.DisposeAsync();
    }
}

/// <summary>
/// <c>configs/gcp/billing_bigquery.yml</c> (<c>gcp.bq_etl</c> with <c>source: bigquery</c>) through the run API against a
/// loopback BigQuery replaying the documented jobs.query / getQueryResults shapes: a pending job then three pages,
/// credits netted exactly by hand, the request's query parameters, 429/503/timeouts retried per request on the manual
/// clock, truncated JSON, 403 marking the integration INVALID, errors in a response, request-time 422s, idempotent
/// reruns and tenant isolation. Rows are read through the app's warehouse, so the class runs on either backend
/// (<c>CONVERGENCE_TEST_BACKEND</c>).
/// </summary>
public sealed class BigQueryBillingPipelineTests : IClassFixture<BigQueryFixture>, IDisposable
{
    private const string Pipeline = "gcp/billing_bigquery";
    private const string Table = "gcp_billing_daily_raw";
    private const string ExportTable = "acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9";

    /// <summary>Timers due within this are the run's retry waits; the maintenance timer is an hour out.</summary>
    private static readonly TimeSpan Horizon = TimeSpan.FromMinutes(2);

    private static readonly Dictionary<string, string> Slice = new() { ["table"] = ExportTable, ["start_date"] = "2025-11-20", ["end_date"] = "2025-11-21" };

    /// <summary>A schedule's parameters: the table (each scheduled run's date is its scheduled day).</summary>
    private static readonly Dictionary<string, string> ScheduleParameters = new() { ["table"] = ExportTable };

    private readonly BigQueryFixture _fixture;

    public BigQueryBillingPipelineTests(BigQueryFixture fixture)
    {
        _fixture = fixture;
        fixture.Fake.Reset();
    }

    private PipelineHarness Api => _fixture.Harness;

    private FakeBigQuery Fake => _fixture.Fake;

    public void Dispose() => Fake.Reset();

    [Fact]
    public async Task Billing_PendingJobThenThreePages_LoadsEveryRowWithCreditsNettedExactly()
    {
        var org = await SetUpAsync("bqbill", "acme-prod-1");

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        ByAccountAndDay(org.Slug).ShouldBe(
        [
            $"{AccountA}|2025-11-20|3|17.033333|-7.2|9.833333",
            $"{AccountA}|2025-11-21|2|7.770001|-1.11|6.660001",
            $"{AccountB}|2025-11-20|1|100.01|-0.01|100",
            $"{AccountB}|2025-11-21|2|3.6|-0.1|3.5",
        ]);
        var rows = Db(org.Slug).Rows($"SELECT * FROM {Table}");
        rows.Count.ShouldBe(8);
        rows.Sum(r => Dec(r["cost"])).ShouldBe(128.413334m);
        rows.Sum(r => Dec(r["credits_total"])).ShouldBe(-8.42m);
        rows.Sum(r => Dec(r["cost_after_credits"])).ShouldBe(119.993334m);

        // Row 1: nested records flattened, credits kept as JSON with exact amounts, labels as an object, timestamps from float seconds.
        var first = rows.Single(r => (long)r["source_line"]! == 1);
        (first["billing_account_id"], first["service_description"], first["sku_id"], first["project_id"], first["region"], first["invoice_month"], first["cost_type"])
            .ShouldBe((AccountA, "Compute Engine", "SKU-6F81", "acme-prod-1", "europe-west1", "202511", "regular"));
        (Dec(first["cost"]), Dec(first["credits_total"]), Dec(first["cost_after_credits"])).ShouldBe((12.5m, -3m, 9.5m));
        first["usage_start_time"].ShouldBe("2025-11-20T10:00:00.0000000Z");
        first["export_time"].ShouldBe("2025-11-20T16:00:00.1234560Z");
        first["usage_date"].ShouldBe("2025-11-20");
        first["partition_date"].ShouldBe("2025-11-20");
        first["labels"].ShouldBeJson("""{"team":"data","env":"prod"}""");
        using (var credits = JsonDocument.Parse((string)first["credits"]!))
        {
            credits.RootElement.EnumerateArray().Select(c => (c.GetProperty("name").GetString(), c.GetProperty("amount").GetRawText(), c.GetProperty("type").GetString()))
                .ShouldBe([("SustainedUsageDiscount", "-2.25", "SUSTAINED_USAGE_DISCOUNT"), ("FreeTrial:Credit-01A2B3", "-0.75", "PROMOTION")]);
        }

        ((string)first["source_uri"]!).ShouldStartWith("bigquery:acme-prod-1:EU.job_");
        rows.Select(r => (long)r["source_line"]!).Order().ShouldBe([1L, 2, 3, 4, 5, 6, 7, 8]);
        Dec(rows.Single(r => (long)r["source_line"]! == 4)["cost"]).ShouldBe(0.000001m, "FLOAT 1.0E-6 read exactly");

        // The requests: jobs.query (pending), one poll (pending), then pages 1..3 by pageToken, all as the org's account.
        var requests = Fake.RequestsFor("acme-prod-1");
        requests.Select(r => r.Method + (r.Query.Contains("pageToken=", StringComparison.Ordinal) ? " token" : "")).ShouldBe(["POST", "GET", "GET", "GET token", "GET token"]);
        requests.ShouldAllBe(r => r.Email == org.Email);
        requests.Where(r => r.Method == "GET").ShouldAllBe(r => r.Query.Contains("location=EU", StringComparison.Ordinal) && r.Query.Contains("maxResults=10000", StringComparison.Ordinal));
        requests[3].Query.ShouldContain("pageToken=page-2");
        requests[4].Query.ShouldContain("pageToken=page-3");

        var body = requests[0].Body!;
        body["useLegacySql"]!.GetValue<bool>().ShouldBeFalse();
        body["parameterMode"]!.GetValue<string>().ShouldBe("NAMED");
        body["location"]!.GetValue<string>().ShouldBe("EU");
        body["maxResults"]!.GetValue<int>().ShouldBe(10000);
        body["maximumBytesBilled"]!.GetValue<string>().ShouldBe("1000000000000");
        body["requestId"]!.GetValue<string>().ShouldNotBeNullOrEmpty();
        body["labels"]!["convergence_org"]!.GetValue<string>().ShouldBe(org.Slug);
        var sql = body["query"]!.GetValue<string>();
        sql.ShouldContain($"FROM `{ExportTable}`");
        sql.ShouldContain("DATE(usage_start_time) BETWEEN @start_date AND @end_date");
        sql.ShouldContain("TIMESTAMP(DATE_SUB(@start_date, INTERVAL 2 DAY))");
        sql.ShouldNotContain("2025-11-20");
        body["queryParameters"]!.ToJsonString().ShouldBe(
            """[{"name":"end_date","parameterType":{"type":"DATE"},"parameterValue":{"value":"2025-11-21"}},{"name":"start_date","parameterType":{"type":"DATE"},"parameterValue":{"value":"2025-11-20"}}]""");

        var load = await StepAsync(org, run, "load_billing_export");
        (load.GetProperty("rows_processed").GetInt64(), load.GetProperty("attempt").GetInt32()).ShouldBe((8L, 1));
        var metadata = load.GetProperty("metadata");
        (metadata.GetProperty("pages").GetInt32(), metadata.GetProperty("rows_read").GetInt64(), metadata.Str("project_id"), metadata.Str("format"))
            .ShouldBe((3, 8L, "acme-prod-1", "gcp_billing_export"));

        // FOCUS: billed = Σ cost, effective = Σ (cost + credits).
        var costs = await (await org.Client.GetAsync($"/api/v1/data/{org.Slug}/costs/daily?start_date=2025-11-20&end_date=2025-11-21&group_by=provider")).ShouldBeJsonAsync(HttpStatusCode.OK);
        var gcp = costs.GetProperty("rows").EnumerateArray().ShouldHaveSingleItem();
        (gcp.Str("provider"), gcp.GetProperty("billed_cost").GetDecimal(), gcp.GetProperty("effective_cost").GetDecimal()).ShouldBe(("gcp", 128.413334m, 119.993334m));

        // No access token or key material in the run's records or the logs.
        var records = run.ToString() + (await PipelineHarness.GetStepsAsync(org.Client, run.Str("pipeline_logging_id"))).ToString();
        var logs = Api.Factory.Logs.Records.SelectMany(r => r.AllText()).ToList();
        var pem = JsonDocument.Parse(Fake.ServiceAccountJson(org.Email, "acme-prod-1")).RootElement.GetProperty("private_key").GetString()!.Split('\n')[3];
        records.ShouldNotContain(pem);
        logs.ShouldNotContain(l => l.Contains(pem, StringComparison.Ordinal));
        Fake.IssuedTokens.ShouldNotBeEmpty();
        foreach (var token in Fake.IssuedTokens)
        {
            records.ShouldNotContain(token);
            logs.ShouldNotContain(l => l.Contains(token, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Rerun_SameSlice_ReplacesTheRowsWithoutDoubling()
    {
        var org = await SetUpAsync("bqrerun", "acme-prod-1");
        var first = await RunAsync(org);
        var before = ByAccountAndDay(org.Slug);

        var second = await RunAsync(org);

        (first.Str("status"), second.Str("status")).ShouldBe(("COMPLETED", "COMPLETED"), second.ToString());
        ByAccountAndDay(org.Slug).ShouldBe(before);
        Db(org.Slug).Count(Table).ShouldBe(8);
        var secondJob = Fake.RequestsFor("acme-prod-1").Last().JobId;
        Db(org.Slug).Rows($"SELECT DISTINCT source_uri FROM {Table}").ShouldHaveSingleItem()["source_uri"].ShouldBe($"bigquery:acme-prod-1:EU.{secondJob}", "every row comes from the second run's job");
        Fake.RequestsFor("acme-prod-1").Count(r => r.Method == "POST").ShouldBe(2);
    }

    [Fact]
    public async Task RowsOutsideTheSlice_AreCountedNotWritten()
    {
        var org = await SetUpAsync("bqslice", "acme-prod-1");
        Fake.SetResult("acme-prod-1", new FakeBigQueryResult(Schema,
        [
            .. Rows().Rows,
            Row(AccountA, "6F81-5844-456A", "Compute Engine", "2025-11-19T23:00:00Z", "50", [], []),
        ]));

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Db(org.Slug).Count(Table).ShouldBe(8);
        var metadata = (await StepAsync(org, run, "load_billing_export")).GetProperty("metadata");
        (metadata.GetProperty("rows_read").GetInt64(), metadata.GetProperty("rows_outside_slice").GetInt64()).ShouldBe((9L, 1L));
    }

    [Fact]
    public async Task RateLimited429_WaitsRetryAfterOnTheClockAndResumesAtThatPage()
    {
        var org = await SetUpAsync("bq429", "acme-prod-1");
        Fake.Fail("page:2", "429");
        var before = Api.ManualClock!.GetUtcNow();

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        (Api.ManualClock.GetUtcNow() - before).ShouldBeGreaterThanOrEqualTo(TimeSpan.FromSeconds(FakeBigQuery.RetryAfterSeconds), "Retry-After is honoured on the clock");
        Fake.RequestsFor("acme-prod-1").Select(r => r.Query.Contains("pageToken=", StringComparison.Ordinal) ? r.Query[(r.Query.IndexOf("pageToken=", StringComparison.Ordinal) + 10)..] : r.Method)
            .ShouldBe(["POST", "GET", "GET", "page-2", "page-2", "page-3"], "pages 1 and the job are not fetched again");
        Db(org.Slug).Count(Table).ShouldBe(8);
        (await StepAsync(org, run, "load_billing_export")).GetProperty("attempt").GetInt32().ShouldBe(1, "the client retried the request, not the executor the step");
    }

    [Fact]
    public async Task ServiceUnavailable503OnJobsQuery_IsRetriedWithTheSameRequestId()
    {
        var org = await SetUpAsync("bq503", "acme-prod-1");
        Fake.Fail("query", "503");

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var posts = Fake.RequestsFor("acme-prod-1").Where(r => r.Method == "POST").ToList();
        posts.Count.ShouldBe(2);
        posts[1].Body!["requestId"]!.GetValue<string>().ShouldBe(posts[0].Body!["requestId"]!.GetValue<string>(), "BigQuery must see the retry as the same request, not a second job");
        Fake.RequestsFor("acme-prod-1").Where(r => r.Method == "GET").Select(r => r.JobId).Distinct().ShouldHaveSingleItem();
        Db(org.Slug).Count(Table).ShouldBe(8);
    }

    [Fact]
    public async Task Timeout_OnAPage_IsRetriedOnTheSameRequest()
    {
        var org = await SetUpAsync("bqhang", "acme-prod-1");
        Fake.Fail("page:3", "hang");

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Fake.RequestsFor("acme-prod-1").Count(r => r.Query.Contains("pageToken=page-3", StringComparison.Ordinal)).ShouldBe(2);
        Db(org.Slug).Count(Table).ShouldBe(8);
        (await StepAsync(org, run, "load_billing_export")).GetProperty("attempt").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task TruncatedJsonOnce_IsRetriedAndCompletes()
    {
        var org = await SetUpAsync("bqtrunc1", "acme-prod-1");
        Fake.Fail("page:2", "truncated");

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        Db(org.Slug).Count(Table).ShouldBe(8);
    }

    [Fact]
    public async Task TruncatedJsonTwice_FailsNamingTheResponseAndKeepsThePreviousRows()
    {
        var org = await SetUpAsync("bqtrunc2", "acme-prod-1");
        var good = await RunAsync(org);
        good.Str("status").ShouldBe("COMPLETED", good.ToString());
        var before = ByAccountAndDay(org.Slug);
        Fake.Fail("page:3", "truncated", "truncated");

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain("BigQuery getQueryResults (page 3) in project acme-prod-1");
        run.Str("error_message").ShouldContain("not valid JSON");
        var step = await StepAsync(org, run, "load_billing_export");
        (step.Str("status"), step.GetProperty("attempt").GetInt32()).ShouldBe(("FAILED", 1), "a body malformed twice is not retried by the step");
        (await StepAsync(org, run, "focus")).Str("status").ShouldBe("SKIPPED");
        ByAccountAndDay(org.Slug).ShouldBe(before, "pages 1 and 2 were rolled back with the step");
        Db(org.Slug).Count(Table).ShouldBe(8);
    }

    [Fact]
    public async Task Forbidden403_FailsMarksTheIntegrationInvalidAndWritesNothing_ThenRunsAre422()
    {
        var org = await SetUpAsync("bq403", "acme-prod-1");
        Fake.Fail("page:2", "403");

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain($"BigQuery refused service account {org.Email} (403, accessDenied)");
        run.Str("error_message").ShouldContain("User does not have permission to query table");
        var step = await StepAsync(org, run, "load_billing_export");
        (step.Str("status"), step.GetProperty("attempt").GetInt32()).ShouldBe(("FAILED", 1), "403 is terminal");
        (Db(org.Slug).Tables().Contains(Table) ? Db(org.Slug).Count(Table) : 0).ShouldBe(0);

        var status = await (await org.Client.GetAsync($"/api/v1/integrations/{org.Slug}/gcp")).ShouldBeJsonAsync(HttpStatusCode.OK);
        status.Str("validation_status").ShouldBe("INVALID");
        status.Str("last_error").ShouldContain("accessDenied");

        using var next = await PipelineHarness.PostRunAsync(org.Client, org.Slug, Pipeline, Slice);
        var problem = await next.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").GetProperty("integration")[0].GetString()!.ShouldContain("GCP integration of organization");
        problem.Json.GetProperty("errors").GetProperty("integration")[0].GetString()!.ShouldContain("INVALID");
    }

    [Fact]
    public async Task KeyRefusedByTheTokenEndpoint_FailsAndMarksTheIntegrationInvalid()
    {
        var org = await SetUpAsync("bqrevoked", "acme-prod-1");
        Fake.Revoke(org.Email);

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain($"Google refused service account {org.Email} a BigQuery token (HTTP 400, invalid_grant: Invalid JWT Signature.)");
        (await StepAsync(org, run, "load_billing_export")).GetProperty("attempt").GetInt32().ShouldBe(1);
        Fake.Requests.ShouldBeEmpty();
        var status = await (await org.Client.GetAsync($"/api/v1/integrations/{org.Slug}/gcp")).ShouldBeJsonAsync(HttpStatusCode.OK);
        status.Str("validation_status").ShouldBe("INVALID");
    }

    [Fact]
    public async Task BillingExportRows_LoadExactlyAsTheSameRowsFromAnExportFile()
    {
        // The file sample (JSON lines as BigQuery exports them) through gcp/billing, and the same rows in BigQuery's wire
        // form through gcp/billing_bigquery: one mapping and one credit netting, so every column but the source matches.
        var fileOrg = await SetUpAsync("bqsamefile", "acme-prod-1");
        var folder = Path.Combine(Api.Factory.DataDirectory, "imports", fileOrg.Slug);
        Directory.CreateDirectory(folder);
        var sample = Path.Combine(AppContext.BaseDirectory, "Fixtures", "gcp", "gcp_billing_export_sample.jsonl");
        File.Copy(sample, Path.Combine(folder, "sample.jsonl"), overwrite: true);
        var fileRun = await Api.RunAndWaitAsync(fileOrg.Client, fileOrg.Slug, "gcp/billing",
            new Dictionary<string, string> { ["source_uri"] = $"{fileOrg.Slug}/sample.jsonl", ["start_date"] = "2020-11-08", ["end_date"] = "2020-11-11" });
        fileRun.Str("status").ShouldBe("COMPLETED", fileRun.ToString());

        var bigQueryOrg = await SetUpAsync("bqsamebq", "sample-project-9");
        var schemaNode = System.Text.Json.Nodes.JsonNode.Parse(Schema)!;
        var exportFields = schemaNode["fields"]!.AsArray();
        exportFields.Remove(exportFields.Single(f => f!["name"]!.GetValue<string>() == "partition_date"));
        var schemaJson = schemaNode.ToJsonString();
        var fields = Convergence.Processors.Gcp.BigQuery.BigQueryField.ParseSchema(JsonDocument.Parse(schemaJson).RootElement);
        fields.Count.ShouldBe(17);
        Fake.SetResult("sample-project-9", new FakeBigQueryResult(schemaJson, [.. File.ReadLines(sample).Select(line => WireRow(JsonDocument.Parse(line).RootElement, fields))]));
        var parameters = new Dictionary<string, string>(Slice) { ["start_date"] = "2020-11-08", ["end_date"] = "2020-11-11" };
        var id = await PipelineHarness.StartRunAsync(bigQueryOrg.Client, bigQueryOrg.Slug, Pipeline, parameters);
        JsonElement run = default;
        (await Api.DriveAsync(Task.Run(async () => run = await Api.WaitForRunAsync(bigQueryOrg.Client, id)), Horizon)).ShouldBeNull();
        run.Str("status").ShouldBe("COMPLETED", run.ToString());

        string[] ignored = ["source_uri", "source_line"];
        List<string> Keys(string org) => [.. Db(org).Rows($"SELECT * FROM {Table}")
            .Select(r => string.Join("|", r.Where(kv => !ignored.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")))
            .Order(StringComparer.Ordinal)];
        var fromFile = Keys(fileOrg.Slug);
        fromFile.Count.ShouldBe(25);
        Keys(bigQueryOrg.Slug).ShouldBe(fromFile);
    }

    [Theory]
    [InlineData("query", "errors", "BigQuery jobs.query in project acme-prod-1: BigQuery reported invalidQuery at query: Unrecognized name: usage_start_tme at [5:16]", 1)]
    [InlineData("page:1", "errorResult", "BigQuery getQueryResults (page 1) in project acme-prod-1 (job acme-prod-1:EU.job_", 2)]
    [InlineData("page:1", "errorResult", "BigQuery reported resourcesExceeded: Resources exceeded during query execution", 2)]
    public async Task ErrorsInTheResponse_FailTheStepWithGooglesMessage(string request, string fault, string message, int requests)
    {
        var org = await SetUpAsync("bqerrors", "acme-prod-1");
        Fake.IncompleteResponses = 0;
        Fake.Fail(request, fault);
        if (request == "page:1")
        {
            Fake.IncompleteResponses = 1;
        }

        var run = await RunAsync(org);

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain(message);
        run.Str("error_message").ShouldEndWith("Nothing was written.");
        var step = await StepAsync(org, run, "load_billing_export");
        (step.Str("status"), step.GetProperty("attempt").GetInt32()).ShouldBe(("FAILED", 1), "a failed query is not retried");
        Fake.RequestsFor("acme-prod-1").Count.ShouldBe(requests);
        var status = await (await org.Client.GetAsync($"/api/v1/integrations/{org.Slug}/gcp")).ShouldBeJsonAsync(HttpStatusCode.OK);
        status.Str("validation_status").ShouldBe("VALID", "a query error says nothing about the key");
    }

    [Fact]
    public async Task NoGcpIntegration_Is422NamingTheIntegration_AndNothingIsQueued()
    {
        var org = await Api.OnboardAsync("bqnone");
        var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await PipelineHarness.PostRunAsync(client, org.Slug, Pipeline, Slice);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        var message = problem.Json.GetProperty("errors").GetProperty("integration")[0].GetString()!;
        message.ShouldContain($"organization '{org.Slug}' has no GCP integration");
        message.ShouldContain($"POST /api/v1/integrations/{org.Slug}/gcp/setup");
        var runs = await (await client.GetAsync($"/api/v1/pipelines/runs?org={org.Slug}")).ShouldBeJsonAsync(HttpStatusCode.OK);
        runs.GetProperty("runs").EnumerateArray().Select(r => r.Str("pipeline")).ShouldNotContain(Pipeline, "nothing was queued");
        Fake.Requests.ShouldBeEmpty();
    }

    [Fact]
    public async Task Schedule_ForAnOrgWithoutAGcpIntegration_IsAcceptedAsForAnyOrg()
    {
        var none = await Api.OnboardAsync("bqschedok");
        var client = Api.Factory.OrgClient(none.ApiKey);
        var body = new { pipeline = Pipeline, cron_schedule = "0 6 * * *", timezone = "UTC", parameters = ScheduleParameters };

        using var created = await client.PostJsonAsync($"/api/v1/schedules/{none.Slug}", body);
        var schedule = await created.ShouldBeJsonAsync(HttpStatusCode.Created);
        (schedule.Str("pipeline"), schedule.Str("cron_schedule"), schedule.GetProperty("is_active").GetBoolean()).ShouldBe((Pipeline, "0 6 * * *", true));
        schedule.GetProperty("next_run_time").ValueKind.ShouldBe(JsonValueKind.String, "the integration may be added before the schedule is due");

        using var replaced = await System.Net.Http.Json.HttpClientJsonExtensions.PutAsJsonAsync(client, $"/api/v1/schedules/{none.Slug}/{schedule.Str("config_id")}", body with { cron_schedule = "30 7 * * *" }, ConvergenceApiFactory.Json);
        (await replaced.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("cron_schedule").ShouldBe("30 7 * * *");
    }

    [Fact]
    public async Task ScheduledRun_OrgWithoutAGcpIntegration_FailsNamingTheStepBeforeAnyStep_ThenRunsOnceTheIntegrationIsAdded()
    {
        var org = await Api.OnboardAsync("bqsched");
        var client = Api.Factory.OrgClient(org.ApiKey);
        using (var created = await client.PostJsonAsync($"/api/v1/schedules/{org.Slug}", new { pipeline = Pipeline, cron_schedule = "* * * * *", timezone = "UTC", parameters = ScheduleParameters }))
        {
            await created.ShouldBeJsonAsync(HttpStatusCode.Created);
        }

        var tables = Db(org.Slug).Tables();
        var refusedId = await TriggerNextTickAsync(org.Slug);
        var refused = await Api.WaitForRunAsync(client, refusedId);

        (refused.Str("status"), refused.Str("trigger"), refused.Str("error_class")).ShouldBe(("FAILED", "SCHEDULER", "RunRefusedException"), refused.ToString());
        var message = refused.Str("error_message");
        message.ShouldContain("step 'load_billing_export' (gcp.bq_etl) refused the organization");
        message.ShouldContain($"organization '{org.Slug}' has no GCP integration");
        message.ShouldContain($"POST /api/v1/integrations/{org.Slug}/gcp/setup");
        message.ShouldContain("No step was executed.");
        var steps = (await PipelineHarness.GetStepsAsync(client, refusedId)).GetProperty("steps").EnumerateArray().ToList();
        steps.Select(s => s.Str("status")).ShouldAllBe(status => status == "SKIPPED", "no step executed");
        steps.Single(s => s.Str("step_id") == "load_billing_export").Str("error_message").ShouldBe(message);
        Db(org.Slug).Tables().ShouldBe(tables, "no warehouse table was touched");
        Fake.Requests.ShouldBeEmpty();

        // The entry is closed FAILED by its worker, not left to the rescuer: a lease expiring later retries nothing.
        Api.ManualClock!.Advance(TimeSpan.FromHours(2));
        using (var root = Api.Factory.RootClient())
        using (var process = await root.PostAsync("/api/v1/scheduler/process-queue", null))
        {
            process.IsSuccessStatusCode.ShouldBeTrue();
        }

        var entry = Api.Factory.ControlPlane().Rows("SELECT status, attempts, last_error FROM org_pipeline_execution_queue WHERE queue_id = $id", ("$id", refusedId)).ShouldHaveSingleItem();
        (entry["status"], Convert.ToInt64(entry["attempts"], CultureInfo.InvariantCulture)).ShouldBe(("FAILED", 1L));
        ((string)entry["last_error"]!).ShouldBe(message);
        (await Api.WaitForRunAsync(client, refusedId)).Str("status").ShouldBe("FAILED");

        var email = $"billing-reader@{org.Slug.Replace('_', '-')}.iam.gserviceaccount.com";
        using (var setup = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential = Fake.ServiceAccountJson(email, "acme-prod-1") }))
        {
            (await setup.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("validation_status").ShouldBe("VALID");
        }

        Fake.SetResult("acme-prod-1", Rows());
        var nextId = await TriggerNextTickAsync(org.Slug);
        JsonElement next = default;
        (await Api.DriveAsync(Task.Run(async () => next = await Api.WaitForRunAsync(client, nextId)), Horizon)).ShouldBeNull();

        (next.Str("status"), next.Str("trigger")).ShouldBe(("COMPLETED", "SCHEDULER"), next.ToString());
        (await PipelineHarness.GetStepsAsync(client, nextId)).GetProperty("steps").EnumerateArray().Select(s => s.Str("status")).ShouldAllBe(status => status == "COMPLETED");
        Fake.RequestsFor("acme-prod-1").ShouldNotBeEmpty("the run queried the org's BigQuery with the new key");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("billing_export.gcp_billing_export_v1_X")]
    [InlineData("acme-billing.billing_export.x` WHERE 1=1; --")]
    [InlineData("Acme-Billing.billing_export.table")]
    [InlineData("acme-billing.billing export.table")]
    public async Task TableParameter_ThatIsNotProjectDatasetTable_Is422NamingIt(string? table)
    {
        var org = await SetUpAsync("bqtable", "acme-prod-1");
        var parameters = new Dictionary<string, string>(Slice);
        if (table is null)
        {
            parameters.Remove("table");
        }
        else
        {
            parameters["table"] = table;
        }

        using var response = await PipelineHarness.PostRunAsync(org.Client, org.Slug, Pipeline, parameters);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").GetProperty("table")[0].GetString()!.ShouldContain("must be a BigQuery table as project.dataset.table");
        Fake.Requests.ShouldBeEmpty();
    }

    [Fact]
    public async Task TwoOrgs_EachQueriesItsOwnProjectWithItsOwnKey()
    {
        var a = await SetUpAsync("bqorga", "acme-prod-1");
        var b = await SetUpAsync("bqorgb", "globex-prod-2");
        Fake.SetResult("globex-prod-2", new FakeBigQueryResult(Schema, [Row(AccountB, "152E-C115-5142", "Cloud Run", "2025-11-21T05:00:00Z", "42.42", [("Promo", "-2.42", "PROMOTION")], [], project: "globex-prod-2")]));

        var runA = await RunAsync(a);
        var runB = await RunAsync(b);

        (runA.Str("status"), runB.Str("status")).ShouldBe(("COMPLETED", "COMPLETED"), runB.ToString());
        Fake.RequestsFor("acme-prod-1").ShouldAllBe(r => r.Email == a.Email);
        Fake.RequestsFor("globex-prod-2").ShouldAllBe(r => r.Email == b.Email);
        Fake.RequestsFor("globex-prod-2").ShouldNotBeEmpty();
        Fake.Requests.Where(r => r.Email == a.Email).ShouldAllBe(r => r.Project == "acme-prod-1", "org A's key is never used for org B's project");
        Db(a.Slug).Count(Table).ShouldBe(8);
        ByAccountAndDay(b.Slug).ShouldBe([$"{AccountB}|2025-11-21|1|42.42|-2.42|40"]);
    }

    [Fact]
    public async Task RowsFormat_ConvertsEveryTypeByTheSchemaAndBindsTheRunsParameters()
    {
        var org = await SetUpAsync("bqrows", "acme-prod-1");
        Fake.SetResult("acme-analytics", new FakeBigQueryResult(TypedSchema,
        [
            Record(V("2025-11-20"), V("alpha"), V("9007199254740993"), V("0.1"), V("123456789012345678.123456789"), V("true"), Timestamp(DateTimeOffset.Parse("2025-11-20T10:30:00.5Z", CultureInfo.InvariantCulture)), V("2025-11-20T12:00:00"), V("""{"a":[1,2.50]}"""),
                Repeated(Record(V("k"), V("1.10")), Record(V("m"), null))),
            Record(V("2025-11-21"), null, null, null, null, V("false"), null, null, null, Repeated()),
        ]));

        var run = await Api.RunAndWaitAsync(org.Client, org.Slug, BigQueryFixture.RowsPipeline, new { start_date = "2025-11-20", end_date = "2025-11-21" });

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        var rows = Db(org.Slug).Rows("SELECT * FROM bq_typed ORDER BY day");
        rows.Count.ShouldBe(2);
        var first = rows[0];
        (first["day"], first["name"], first["count"], first["flag"]).ShouldBe(("2025-11-20", "alpha", 9007199254740993L, 1L));
        Convert.ToDouble(first["ratio"], CultureInfo.InvariantCulture).ShouldBe(0.1);
        Dec(first["amount"]).ShouldBe(123456789012345678.123456789m);
        first["seen_at"].ShouldBe("2025-11-20T10:30:00.5000000Z");
        first["local_at"].ShouldBe("2025-11-20T12:00:00.0000000Z");
        first["attributes"].ShouldBeJson("""{"a":[1,2.50]}""");
        first["tags"].ShouldBeJson("""[{"key":"k","value":1.10},{"key":"m","value":null}]""");
        (rows[1]["name"], rows[1]["count"], rows[1]["amount"], rows[1]["flag"]).ShouldBe((null, null, null, 0L));
        rows[1]["tags"].ShouldBeJson("[]");

        var body = Fake.RequestsFor("acme-analytics")[0].Body!;
        body["query"]!.GetValue<string>().ShouldBe("SELECT * FROM usage WHERE day BETWEEN @start_date AND @end_date AND org = @org_slug");
        body["maxResults"]!.GetValue<int>().ShouldBe(500);
        body["queryParameters"]!.ToJsonString().ShouldContain($$$"""{"name":"org_slug","parameterType":{"type":"STRING"},"parameterValue":{"value":"{{{org.Slug}}}"}}""");
    }

    [Fact]
    public async Task RowsFormat_AColumnMissingFromTheResult_FailsNamingIt()
    {
        var org = await SetUpAsync("bqmissing", "acme-prod-1");
        var schema = TypedSchema.Replace("""{"name": "tags", "type": "RECORD", "mode": "REPEATED", "fields": [{"name": "key", "type": "STRING"}, {"name": "value", "type": "NUMERIC"}]}""", """{"name": "tag", "type": "STRING"}""", StringComparison.Ordinal);
        schema.ShouldNotBe(TypedSchema);
        Fake.SetResult("acme-analytics", new FakeBigQueryResult(schema, [Record(V("2025-11-20"), null, null, null, null, null, null, null, null, V("x"))]));

        var run = await Api.RunAndWaitAsync(org.Client, org.Slug, BigQueryFixture.RowsPipeline, new { start_date = "2025-11-20", end_date = "2025-11-21" });

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain("the result has no column 'tags' of table bq_typed");
    }

    [Fact]
    public async Task RowsFormat_AValueThatDoesNotConvert_FailsNamingRowAndColumnAndWritesNothing()
    {
        var org = await SetUpAsync("bqbadvalue", "acme-prod-1");
        var good = Record(V("2025-11-20"), V("ok"), V("1"), null, null, null, null, null, null, Repeated());
        Fake.SetResult("acme-analytics", new FakeBigQueryResult(TypedSchema,
            [good, good, good, good, Record(V("2025-11-21"), V("bad"), V("12.5"), null, null, null, null, null, null, Repeated())]));

        var run = await Api.RunAndWaitAsync(org.Client, org.Slug, BigQueryFixture.RowsPipeline, new { start_date = "2025-11-20", end_date = "2025-11-21" });

        run.Str("status").ShouldBe("FAILED");
        run.Str("error_message").ShouldContain(", row 5, column 'count': '12.5' is not a whole number in the INT64 range. Nothing was written.");
        (Db(org.Slug).Tables().Contains("bq_typed") ? Db(org.Slug).Count("bq_typed") : 0).ShouldBe(0);
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    /// <summary>
    /// A row of a BigQuery JSON export (nested objects, arrays, numbers) in jobs.query's wire form for
    /// <paramref name="fields"/>: scalars as text (numbers keep their text), TIMESTAMPs as float seconds.
    /// </summary>
    private static System.Text.Json.Nodes.JsonObject WireRow(JsonElement row, IReadOnlyList<Convergence.Processors.Gcp.BigQuery.BigQueryField> fields) =>
        Record([.. fields.Select(f => row.TryGetProperty(f.Name, out var v) ? Wire(v, f, f.IsRepeated) : null)]);

    private static System.Text.Json.Nodes.JsonNode? Wire(JsonElement value, Convergence.Processors.Gcp.BigQuery.BigQueryField field, bool repeated) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        _ when repeated => Repeated([.. value.EnumerateArray().Select(item => Wire(item, field, repeated: false))]),
        _ when field.IsRecord => WireRow(value, field.Fields),
        _ when field.Type == "TIMESTAMP" => Timestamp(DateTimeOffset.Parse(value.GetString()!.Replace(" UTC", "Z", StringComparison.Ordinal), CultureInfo.InvariantCulture)),
        JsonValueKind.String => V(value.GetString()),
        _ => V(value.GetRawText()),
    };

    private const string TypedSchema = """
        {"fields": [
          {"name": "day", "type": "DATE"}, {"name": "name", "type": "STRING"}, {"name": "count", "type": "INTEGER"},
          {"name": "ratio", "type": "FLOAT"}, {"name": "amount", "type": "BIGNUMERIC"}, {"name": "flag", "type": "BOOLEAN"},
          {"name": "seen_at", "type": "TIMESTAMP"}, {"name": "local_at", "type": "DATETIME"}, {"name": "attributes", "type": "JSON"},
          {"name": "tags", "type": "RECORD", "mode": "REPEATED", "fields": [{"name": "key", "type": "STRING"}, {"name": "value", "type": "NUMERIC"}]}
        ]}
        """;

    private sealed record BqOrg(string Slug, HttpClient Client, string Email);

    /// <summary>An org with a GCP integration whose service account belongs to <paramref name="project"/>; the fake serves the export rows there.</summary>
    private async Task<BqOrg> SetUpAsync(string prefix, string project)
    {
        var org = await Api.OnboardAsync(prefix);
        var client = Api.Factory.OrgClient(org.ApiKey);
        var email = $"billing-reader@{org.Slug.Replace('_', '-')}.iam.gserviceaccount.com";
        using var setup = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential = Fake.ServiceAccountJson(email, project) });
        (await setup.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("validation_status").ShouldBe("VALID");
        if (project == "acme-prod-1")
        {
            Fake.SetResult(project, Rows());
        }

        return new BqOrg(org.Slug, client, email);
    }

    private async Task<JsonElement> RunAsync(BqOrg org)
    {
        var id = await PipelineHarness.StartRunAsync(org.Client, org.Slug, Pipeline, Slice);
        JsonElement run = default;
        var failure = await Api.DriveAsync(Task.Run(async () => run = await Api.WaitForRunAsync(org.Client, id)), Horizon);
        failure.ShouldBeNull();
        return run;
    }

    /// <summary>Moves the clock to the org's next due tick, triggers the scheduler and returns the run id queued for it.</summary>
    private async Task<string> TriggerNextTickAsync(string org)
    {
        var db = Api.Factory.ControlPlane();
        var before = db.Rows("SELECT queue_id FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org)).Select(r => (string)r["queue_id"]!).ToHashSet();
        Api.ManualClock!.Advance(TimeSpan.FromMinutes(1));
        using (var root = Api.Factory.RootClient())
        using (var trigger = await root.PostAsync("/api/v1/scheduler/trigger", null))
        {
            (await trigger.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("queued").GetInt32().ShouldBeGreaterThanOrEqualTo(1);
        }

        return db.Rows("SELECT queue_id FROM org_pipeline_execution_queue WHERE org_slug = $org", ("$org", org)).Select(r => (string)r["queue_id"]!).Single(id => !before.Contains(id));
    }

    private static async Task<JsonElement> StepAsync(BqOrg org, JsonElement run, string stepId) =>
        (await PipelineHarness.GetStepsAsync(org.Client, run.Str("pipeline_logging_id"))).GetProperty("steps").EnumerateArray().Single(s => s.Str("step_id") == stepId);

    private WarehouseRows Db(string org) => new(Api.Factory, org);

    /// <summary>account|day|rows|Σ cost|Σ credits|Σ net, exact decimals, ordered.</summary>
    private List<string> ByAccountAndDay(string org) =>
        [.. Db(org).Rows($"SELECT * FROM {Table}")
            .GroupBy(r => ((string)r["billing_account_id"]!, (string)r["usage_date"]!))
            .Select(g => string.Join("|", g.Key.Item1, g.Key.Item2, g.Count().ToString(CultureInfo.InvariantCulture),
                Text(g.Sum(r => Dec(r["cost"]))), Text(g.Sum(r => Dec(r["credits_total"]))), Text(g.Sum(r => Dec(r["cost_after_credits"])))))
            .Order(StringComparer.Ordinal)];

    private static decimal Dec(object? value) => decimal.Parse(Convert.ToString(value, CultureInfo.InvariantCulture)!, NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>A decimal without trailing fractional zeros.</summary>
    private static string Text(decimal value) => (value / 1.0000000000000000000000000000m).ToString(CultureInfo.InvariantCulture);
}
