using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>Two instances on one embedded data folder: SQLite in WAL mode serializes the processes' writers.</summary>
public sealed class SqliteMultiInstanceTests : MultiInstanceContract
{
    protected override IReadOnlyDictionary<string, string> Backend => new Dictionary<string, string>();

    protected override long CountUnfinishedRuns() =>
        ControlPlane.Count("org_meta_pipeline_runs", "status IN ('RUNNING', 'PENDING')");

    protected override IReadOnlyDictionary<string, object?> QueueEntry(string runId) =>
        ControlPlane.Rows("SELECT status, attempts, last_error FROM org_pipeline_execution_queue WHERE pipeline_logging_id = $id", ("$id", runId)).ShouldHaveSingleItem();

    protected override IEnumerable<IReadOnlyDictionary<string, object?>> UsageRows(string org) =>
        ControlPlaneDb.Sqlite(Path.Combine(Data, "datasets", org + "_local.sqlite")).Rows("SELECT * FROM openai_usage_daily_raw");

    private ControlPlaneDb ControlPlane => ControlPlaneDb.Sqlite(Path.Combine(Data, "datasets", "organizations.sqlite"));
}

/// <summary>
/// Real service processes sharing one store: an org onboarded on one instance is served by the other, a burst split
/// across both never over-admits, and a worker killed with SIGKILL mid-run loses its lease and the surviving instance
/// runs the entry again, once, to the rows of a clean run.
/// </summary>
public abstract class MultiInstanceContract : IAsyncLifetime
{
    private static readonly object Slice = new { start_date = "2025-11-20", end_date = "2025-11-21" };

    private FakeUsageApis _fake = null!;

    /// <summary>The instances' shared data folder (key ring, and for SQLite the datasets).</summary>
    protected string Data { get; } = ConvergenceApiFactory.NewTemporaryDirectory();

    /// <summary>Settings selecting the store and warehouse every instance shares.</summary>
    protected abstract IReadOnlyDictionary<string, string> Backend { get; }

    public virtual async Task InitializeAsync() => _fake = await FakeUsageApis.StartAsync();

    public virtual async Task DisposeAsync()
    {
        await _fake.DisposeAsync();
        ConvergenceApiFactory.DeleteDirectory(Data);
    }

    protected abstract long CountUnfinishedRuns();

    protected abstract IReadOnlyDictionary<string, object?> QueueEntry(string runId);

    protected abstract IEnumerable<IReadOnlyDictionary<string, object?>> UsageRows(string org);

    [Fact]
    public async Task TwoInstances_ShareOrgsAndQuotas_ABurstSplitAcrossBothAdmitsOnlyThePlansLimit()
    {
        await using var a = await ServiceProcess.StartAsync(Data, Settings());
        await using var b = await ServiceProcess.StartAsync(Data, Settings());
        using (var root = a.Client(root: true))
        {
            (await root.PostAsJsonAsync("/api/v1/admin/bootstrap", new { })).EnsureSuccessStatusCode();
        }

        var (org, key) = await OnboardAsync(a, "STARTER");
        using var onA = a.Client(key);
        using var onB = b.Client(key);
        using (var read = await onB.GetAsync($"/api/v1/organizations/{org}"))
        {
            (await read.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("org_slug").ShouldBe(org, "onboarded on A, served by B");
        }

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(i =>
            (i % 2 == 0 ? onA : onB).PostAsJsonAsync($"/api/v1/pipelines/run/{org}/gcp/example/dryrun", new { date = "2025-11-20" })));

        responses.Count(r => r.StatusCode == HttpStatusCode.Accepted).ShouldBe(6, string.Join(", ", responses.Select(r => (int)r.StatusCode)));
        responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests).ShouldBe(44);
        responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ShouldAllBe(r => r.Headers.RetryAfter != null);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task Kill9_MidRun_TheLeaseExpiresAndTheOtherInstanceRunsItOnceToTheRowsOfACleanRun()
    {
        await using var a = await ServiceProcess.StartAsync(Data, Settings());
        using (var root = a.Client(root: true))
        {
            (await root.PostAsJsonAsync("/api/v1/admin/bootstrap", new { })).EnsureSuccessStatusCode();
        }

        var (org, key) = await OnboardAsync(a, "SCALE");
        var (clean, cleanKey) = await OnboardAsync(a, "SCALE");
        await SetUpOpenAiAsync(a, org, key);
        await SetUpOpenAiAsync(a, clean, cleanKey);
        _fake.Reset();

        // A clean run of the same slice, for the rows to compare with.
        using (var cleanClient = a.Client(cleanKey))
        {
            var cleanRun = await StartAsync(cleanClient, clean);
            (await WaitFinishedAsync(cleanClient, cleanRun)).Str("status").ShouldBe("COMPLETED");
        }

        // The provider stops answering the first usage page: A's worker is mid-run when it is killed. (The clean run's
        // requests are still recorded: A's worker has called once there is one more. Counting from zero let the test kill
        // A before its worker had claimed the run, which B then ran as its first attempt.)
        _fake.Fail(FakeUsageApis.OpenAiCompletions, 1, "hang", "hang", "hang");
        var cleanRequests = _fake.RequestsTo(FakeUsageApis.OpenAiCompletions).Count;
        string runId;
        using (var onA = a.Client(key))
        {
            runId = await StartAsync(onA, org);
        }

        await WaitUntilAsync(() => _fake.RequestsTo(FakeUsageApis.OpenAiCompletions).Count > cleanRequests, "A's worker to call the provider");
        a.Kill();
        _fake.Reset();

        await using var b = await ServiceProcess.StartAsync(Data, Settings());
        using var onB = b.Client(key);
        var run = await WaitFinishedAsync(onB, runId);

        run.Str("status").ShouldBe("COMPLETED", run.ToString());
        run.GetProperty("attempt").GetInt32().ShouldBe(
            2, $"one retry after the lease of the killed worker expired; run {run}; entry {string.Join(", ", QueueEntry(runId).Select(e => $"{e.Key}={e.Value}"))}");
        CountUnfinishedRuns().ShouldBe(0, "no run stays RUNNING");

        // The worker closes the queue entry just after it writes the finished run row.
        await WaitUntilAsync(() => (string)QueueEntry(runId)["status"]! is not ("CLAIMED" or "RUNNING"), "the queue entry to close");
        var entry = QueueEntry(runId);
        entry["status"].ShouldBe("COMPLETED");
        Convert.ToInt64(entry["attempts"], System.Globalization.CultureInfo.InvariantCulture).ShouldBe(2L);
        ((string)entry["last_error"]!).ShouldContain("expired");

        Comparable(org).ShouldBe(Comparable(clean), "the retry wrote exactly the rows of a clean run");
        Comparable(org).ShouldNotBeEmpty();
    }

    /// <summary>An org's usage rows as sorted text, without the columns that differ between runs.</summary>
    private IReadOnlyList<string> Comparable(string org) =>
        [.. UsageRows(org)
            .Select(r => string.Join("|", r.Where(kv => kv.Key is not ("ingested_at" or "pipeline_logging_id")).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")))
            .Order(StringComparer.Ordinal)];

    private Dictionary<string, string> Settings() => new(Backend)
    {
        ["OPENAI_BASE_URL"] = _fake.OpenAiBase.AbsoluteUri,
        // A lease lasts four heartbeats: 8 s here, so a killed worker's entry is rescued quickly, while a live worker
        // starved of CPU by a loaded test machine still renews its lease in time (1 s beats proved too tight there).
        ["CONVERGENCE_RUN_HEARTBEAT_SECONDS"] = "2",
        ["CONVERGENCE_QUEUE_POLL_SECONDS"] = "1",
        ["CONVERGENCE_SCHEDULER"] = "external",
    };

    private static async Task<(string Org, string Key)> OnboardAsync(ServiceProcess instance, string plan)
    {
        var slug = PipelineHarness.NewSlug("multi");
        using var root = instance.Client(root: true);
        using var response = await root.PostAsJsonAsync("/api/v1/organizations/onboard", ConvergenceApiFactory.OnboardBody(slug, plan), ConvergenceApiFactory.Json);
        var body = await response.ShouldBeJsonAsync(HttpStatusCode.Created);
        return (slug, body.Str("api_key"));
    }

    private static async Task SetUpOpenAiAsync(ServiceProcess instance, string org, string key)
    {
        using var client = instance.Client(key);
        using var setup = await client.PostAsJsonAsync($"/api/v1/integrations/{org}/openai/setup", new { credential = FakeProviders.OpenAiAdminKey });
        (await setup.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("validation_status").ShouldBe("VALID");
    }

    private static async Task<string> StartAsync(HttpClient client, string org)
    {
        using var response = await client.PostAsJsonAsync($"/api/v1/pipelines/run/{org}/openai/usage_cost", Slice);
        return (await response.ShouldBeJsonAsync(HttpStatusCode.Accepted)).Str("pipeline_logging_id");
    }

    private static async Task<JsonElement> WaitFinishedAsync(HttpClient client, string runId)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var response = await client.GetAsync($"/api/v1/pipelines/runs/{runId}");
            var run = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            if (run.Str("status") is "COMPLETED" or "FAILED" or "CANCELLED")
            {
                return run;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"Run {runId} did not finish: {run}");
            }

            await Task.Delay(100);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }
}
