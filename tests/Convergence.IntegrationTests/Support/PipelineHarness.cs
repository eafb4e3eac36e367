using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// An API with the test pipelines of <see cref="TestPipelines"/>, the test processors, rate limiting off, and
/// optionally a <see cref="ManualTimeProvider"/>; helpers to run pipelines and wait for them with bounded loops.
/// </summary>
public sealed class PipelineHarness : IAsyncDisposable
{
    /// <summary>How long a helper waits, in real time, for something the app does on its own.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static readonly string[] Finished = [RunStatus.Completed, RunStatus.Failed, RunStatus.Cancelled];

    public PipelineHarness(bool manualClock = false, IReadOnlyDictionary<string, string?>? settings = null, IReadOnlyDictionary<string, string>? extraConfigFiles = null)
    {
        var all = new Dictionary<string, string?>(StringComparer.Ordinal) { ["RATE_LIMIT_ENABLED"] = "false" };
        if (manualClock)
        {
            // The maintenance loop's timer then stays far beyond the horizon the retry tests drive the clock through.
            all["CONVERGENCE_RUN_HEARTBEAT_SECONDS"] = "3600";

            // Likewise no embedded scheduler timer: the tests trigger what they need themselves.
            all["CONVERGENCE_SCHEDULER"] = "external";
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            all[key] = value;
        }

        var files = new Dictionary<string, string>(TestPipelines.Files, StringComparer.Ordinal);
        foreach (var (path, text) in extraConfigFiles ?? new Dictionary<string, string>())
        {
            files[path] = text;
        }

        ManualClock = manualClock ? new ManualTimeProvider() : null;
        var probe = Probe;
        Factory = new ConvergenceApiFactory(all)
        {
            ManualClock = ManualClock,
            ConfigFiles = files,
            ConfigureServices = services => services.AddTestProcessors(probe),
        };
    }

    public ConvergenceApiFactory Factory { get; }

    public PipelineProbe Probe { get; } = new();

    public ManualTimeProvider? ManualClock { get; }

    public IControlPlaneStore Store => Factory.Services.GetRequiredService<IControlPlaneStore>();

    public PipelineExecutor Executor => Factory.Services.GetRequiredService<PipelineExecutor>();

    /// <summary>A fresh org slug (tests isolate their data by org).</summary>
    public static string NewSlug(string prefix) => $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 50)];

    public async Task<OnboardResult> OnboardAsync(string prefix = "org") => await Factory.OnboardAsync(NewSlug(prefix));

    // ---- The run API -------------------------------------------------------------------------------------------------

    public static string RunUrl(string org, string pipeline) => $"/api/v1/pipelines/run/{org}/{pipeline}";

    public static async Task<HttpResponseMessage> PostRunAsync(HttpClient client, string org, string pipeline, object? body = null, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, RunUrl(org, pipeline))
        {
            Content = JsonContent.Create(body ?? new Dictionary<string, string>(), options: ConvergenceApiFactory.Json),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey).ShouldBeTrue();
        }

        return await client.SendAsync(request);
    }

    /// <summary>Queues a run through the API (asserting 202) and returns its id.</summary>
    public static async Task<string> StartRunAsync(HttpClient client, string org, string pipeline, object? body = null, string? idempotencyKey = null)
    {
        using var response = await PostRunAsync(client, org, pipeline, body, idempotencyKey);
        var json = await response.ShouldBeJsonAsync(HttpStatusCode.Accepted);
        return json.Str("pipeline_logging_id");
    }

    /// <summary>Polls GET runs/{id} until the run has finished; returns the last body.</summary>
    public async Task<JsonElement> WaitForRunAsync(HttpClient client, string runId)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var response = await client.GetAsync($"/api/v1/pipelines/runs/{runId}");
            var run = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
            if (Finished.Contains(run.Str("status")))
            {
                return run;
            }

            if (clock.Elapsed > Patience)
            {
                throw new TimeoutException($"Run {runId} did not finish within {Patience.TotalSeconds} s: {run}{Environment.NewLine}{Factory.ErrorLog()}");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Queues a run through the API, waits for it to finish and returns the run body.</summary>
    public async Task<JsonElement> RunAndWaitAsync(HttpClient client, string org, string pipeline, object? body = null)
    {
        var id = await StartRunAsync(client, org, pipeline, body);
        return await WaitForRunAsync(client, id);
    }

    public static async Task<JsonElement> GetStepsAsync(HttpClient client, string runId)
    {
        using var response = await client.GetAsync($"/api/v1/pipelines/runs/{runId}/steps");
        return await response.ShouldBeJsonAsync(HttpStatusCode.OK);
    }

    // ---- The executor, in-process ------------------------------------------------------------------------------------

    /// <summary>Prepares and records a PENDING run of <paramref name="pipeline"/> for <paramref name="org"/>, as the API would.</summary>
    public async Task<PipelineRunRecord> PrepareAsync(string org, string pipeline, IReadOnlyDictionary<string, string>? parameters = null)
    {
        var request = new PipelineRunRequest(pipeline, OrgSlug.From(org), parameters ?? new Dictionary<string, string>(), TestActor(org), RunTrigger.Admin);
        var run = Executor.Prepare(request);
        await Store.CreateRunAsync(run, CancellationToken.None);
        return run;
    }

    /// <summary>Executes a prepared run on a pool thread; the task ends with the run (faulted when it failed).</summary>
    public Task<PipelineRunResult> ExecuteInBackground(PipelineRunRecord run, CancellationToken cancellationToken = default) =>
        Task.Run(() => Executor.ExecuteAsync(run, TestActor(run.OrgSlug!.Value.Value), cancellationToken), CancellationToken.None);

    /// <summary>
    /// Runs <paramref name="work"/> to completion, moving the manual clock to each timer due within
    /// <paramref name="horizon"/> as soon as one is set, and waiting for the app otherwise (bounded by <see cref="Patience"/>).
    /// </summary>
    public async Task<Exception?> DriveAsync(Task work, TimeSpan horizon)
    {
        var clock = ManualClock ?? throw new InvalidOperationException("This harness has no manual clock.");
        using var stop = new CancellationTokenSource();
        var patience = Task.Delay(Patience, stop.Token);
        try
        {
            while (!work.IsCompleted)
            {
                var changed = clock.WhenTimersChange();
                if (clock.NextDueWithin(horizon) is { } due)
                {
                    clock.AdvanceTo(due);
                    continue;
                }

                if (await Task.WhenAny(work, changed, patience) == patience)
                {
                    throw new TimeoutException($"The run did not finish within {Patience.TotalSeconds} s of real time (clock at {clock.GetUtcNow():O}).{Environment.NewLine}{Factory.ErrorLog()}");
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
        }

        try
        {
            await work;
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    /// <summary>Waits (in real time, bounded) until the manual clock has a timer due within <paramref name="horizon"/>; returns its due time.</summary>
    public async Task<DateTimeOffset> WaitForTimerAsync(TimeSpan horizon)
    {
        var clock = ManualClock ?? throw new InvalidOperationException("This harness has no manual clock.");
        var elapsed = Stopwatch.StartNew();
        while (true)
        {
            var changed = clock.WhenTimersChange();
            if (clock.NextDueWithin(horizon) is { } due)
            {
                return due;
            }

            var remaining = Patience - elapsed.Elapsed;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException($"No timer was set within {Patience.TotalSeconds} s.");
            }

            await changed.WaitAsync(remaining).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    public static Actor TestActor(string org) => new(Actor.RootType, null, OrgSlug.From(org), "integration-test", null);

    // ---- Data ------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Every row of <paramref name="table"/> in the org's dataset (read through the app's warehouse, so on either
    /// adapter), ordered; empty when the table does not exist.
    /// </summary>
    public IReadOnlyList<string> TableRows(string org, string table = TestPipelines.Table)
    {
        var db = new WarehouseRows(Factory, org);
        if (!db.Exists || !db.Tables().Contains(table, StringComparer.Ordinal))
        {
            return [];
        }

        return [.. db.Rows($"SELECT * FROM \"{table}\"").Select(r => string.Join("|", r.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"))).Order(StringComparer.Ordinal)];
    }

    public static IReadOnlyDictionary<string, object?> Row(string date, string id, long? amount = null, string? note = null) =>
        new Dictionary<string, object?> { ["event_date"] = DateOnly.Parse(date, System.Globalization.CultureInfo.InvariantCulture), ["id"] = id, ["amount"] = amount, ["note"] = note };

    public async ValueTask DisposeAsync() => await Factory.DisposeAsync();
}

/// <summary>A bootstrapped <see cref="PipelineHarness"/> shared by the tests of a class (each test uses its own org).</summary>
public class PipelineFixture : IAsyncLifetime
{
    public PipelineFixture()
        : this(manualClock: false)
    {
    }

    protected PipelineFixture(bool manualClock, IReadOnlyDictionary<string, string?>? settings = null) => Harness = new PipelineHarness(manualClock, settings);

    public PipelineHarness Harness { get; }

    public async Task InitializeAsync() => await Harness.Factory.BootstrapAsync();

    public async Task DisposeAsync() => await Harness.DisposeAsync();
}

/// <summary>A <see cref="PipelineFixture"/> whose app runs on a <see cref="ManualTimeProvider"/>.</summary>
public sealed class ManualClockPipelineFixture : PipelineFixture
{
    public ManualClockPipelineFixture()
        : base(manualClock: true)
    {
    }
}

/// <summary>A <see cref="PipelineFixture"/> with one worker, so runs wait in the queue.</summary>
public sealed class SingleWorkerPipelineFixture : PipelineFixture
{
    public SingleWorkerPipelineFixture()
        : base(manualClock: false, new Dictionary<string, string?> { ["CONVERGENCE_PIPELINE_WORKERS"] = "1" })
    {
    }
}
