using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>The SQLite run queue, through the app's services (orgs onboarded through the API).</summary>
public sealed class SqliteRunQueueStoreTests : RunQueueStoreContract, IDisposable
{
    // The app's own worker pool must not claim what the tests admit: it is not started (its first pass after bootstrap
    // could race the tests' admissions).
    private readonly ConvergenceApiFactory _factory = new(ConvergenceApiFactory.OnSqlite(new Dictionary<string, string?> { ["CONVERGENCE_QUEUE_POLL_SECONDS"] = "3600" }))
    {
        ConfigureServices = services =>
        {
            foreach (var worker in services.Where(d => d.ImplementationType == typeof(Convergence.Api.Pipelines.PipelineWorkerService)).ToList())
            {
                services.Remove(worker);
            }
        },
    };
    protected override IRunQueueStore Queue => _factory.Services.GetRequiredService<IRunQueueStore>();

    protected override IScheduleStore Schedules => _factory.Services.GetRequiredService<IScheduleStore>();

    protected override IControlPlaneStore Store => _factory.Services.GetRequiredService<IControlPlaneStore>();

    public override async Task InitializeAsync() => await _factory.BootstrapAsync();

    public void Dispose() => _factory.Dispose();

    protected override async Task ArrangeOrgAsync(string org, string plan) => await _factory.OnboardAsync(org, plan);

    protected override long Scalar(string sql, params (string Name, object? Value)[] args) =>
        Convert.ToInt64(_factory.ControlPlane().Scalar(sql.Replace("@", "$", StringComparison.Ordinal), [.. args.Select(a => ("$" + a.Name, a.Value))]), System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The PostgreSQL run queue, on a fresh database of the test server.</summary>
public sealed class PostgresRunQueueStoreTests : RunQueueStoreContract
{
    private Convergence.Storage.Postgres.PostgresControlPlaneSource? _source;

    protected override IRunQueueStore Queue => new Convergence.Storage.Postgres.PostgresRunQueueStore(_source!);

    protected override IScheduleStore Schedules => new Convergence.Storage.Postgres.PostgresScheduleStore(_source!);

    protected override IControlPlaneStore Store => new Convergence.Storage.Postgres.PostgresControlPlaneStore(_source!);

    public override async Task InitializeAsync() => _source = await PostgresTestDatabase.CreateControlPlaneAsync("queue");

    public override async Task DisposeAsync() => await _source!.DataSource.DisposeAsync();

    protected override bool ClaimCarriesTheRunRow => true;

    protected override async Task ArrangeOrgAsync(string org, string plan)
    {
        SubscriptionPlan.TryGet(plan, out var limits).ShouldBeTrue();
        await using var connection = await _source!.DataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO org_profiles VALUES (@org, 'Co', 'a@b.c', 'ACTIVE', @plan, @org || '_local', @now, @now);
            INSERT INTO org_subscriptions VALUES (@org, @plan, 'ACTIVE', @daily, @monthly, @concurrent, NULL, @now, @now);
            """,
            connection);
        command.Parameters.AddWithValue("org", org);
        command.Parameters.AddWithValue("plan", limits.Name);
        command.Parameters.AddWithValue("daily", (long)limits.DailyLimit);
        command.Parameters.AddWithValue("monthly", (long)limits.MonthlyLimit);
        command.Parameters.AddWithValue("concurrent", (long)limits.ConcurrentLimit);
        command.Parameters.AddWithValue("now", Now.UtcDateTime);
        await command.ExecuteNonQueryAsync();
    }

    protected override long Scalar(string sql, params (string Name, object? Value)[] args)
    {
        using var connection = _source!.DataSource.OpenConnection();
        using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in args)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// What every run-queue store must guarantee under concurrency: admission never over-admits, claims never exceed the
/// org's concurrent limit, an expired lease is re-queued and then failed after its last attempt, and every change of a
/// claimed entry is fenced by its lease token.
/// </summary>
public abstract class RunQueueStoreContract : IAsyncLifetime
{
    protected static readonly DateTimeOffset Now = new(2030, 3, 14, 12, 0, 0, TimeSpan.Zero);

    protected abstract IRunQueueStore Queue { get; }

    protected abstract IScheduleStore Schedules { get; }

    protected abstract IControlPlaneStore Store { get; }

    public abstract Task InitializeAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    protected abstract Task ArrangeOrgAsync(string org, string plan);

    protected abstract long Scalar(string sql, params (string Name, object? Value)[] args);

    /// <summary>Whether the store's claim returns the run row it updated (<see cref="QueueLease.Run"/>).</summary>
    protected virtual bool ClaimCarriesTheRunRow => false;

    [Fact]
    public async Task Claim_TheRunRowItCarries_IsTheStoredRowAsTheClaimLeftIt()
    {
        var org = await OrgAsync("carry", "SCALE");
        var admitted = (await Queue.AdmitAsync(Admission(org, maxAttempts: 2), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();

        var first = (await Queue.ClaimAsync("w-1", Now, TimeSpan.FromSeconds(60), CancellationToken.None)).ShouldNotBeNull();
        await ShouldCarryTheStoredRowAsync(first, "w-1");
        (await Queue.RescueExpiredAsync(Now.AddSeconds(60), CancellationToken.None)).ShouldBe(new RescueOutcome(1, 0));
        var second = (await Queue.ClaimAsync("w-2", Now.AddSeconds(61), TimeSpan.FromSeconds(60), CancellationToken.None)).ShouldNotBeNull();
        await ShouldCarryTheStoredRowAsync(second, "w-2");
        second.Run?.Attempt.ShouldBe(2);

        async Task ShouldCarryTheStoredRowAsync(QueueLease lease, string worker)
        {
            lease.PipelineLoggingId.ShouldBe(admitted.PipelineLoggingId);
            if (!ClaimCarriesTheRunRow)
            {
                lease.Run.ShouldBeNull();
                return;
            }

            static string Describe(PipelineRunRecord r) =>
                $"{r.PipelineLoggingId} {r.OrgSlug} {r.PipelinePath} {r.Status} attempt {r.Attempt} worker {r.WorkerId} heartbeat {r.HeartbeatAt:O} created {r.CreatedAt:O} {string.Join(",", r.Parameters)}";
            var carried = lease.Run.ShouldNotBeNull();
            carried.Attempt.ShouldBe(lease.Attempt);
            carried.WorkerId.ShouldBe(worker);
            Describe(carried).ShouldBe(Describe((await Store.FindRunAsync(lease.PipelineLoggingId, lease.Org, CancellationToken.None)).ShouldNotBeNull()));
        }
    }

    /// <summary>
    /// A run admitted for a new org, claimed by w-1 whose lease then expired, and claimed again by w-2 (attempt 2): both
    /// leases, and the run row as the second claim left it.
    /// </summary>
    private async Task<(OrgSlug Org, AdmissionOutcome.Admitted Admitted, QueueLease First, QueueLease Second, PipelineRunRecord Pending)> TakenOverAsync(string name)
    {
        var org = await OrgAsync(name, "SCALE");
        var admitted = (await Queue.AdmitAsync(Admission(org, maxAttempts: 2), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();
        var first = (await Queue.ClaimAsync("w-1", Now, TimeSpan.FromSeconds(60), CancellationToken.None)).ShouldNotBeNull();
        (await Queue.RescueExpiredAsync(Now.AddSeconds(60), CancellationToken.None)).ShouldBe(new RescueOutcome(1, 0));
        var second = (await Queue.ClaimAsync("w-2", Now.AddSeconds(61), TimeSpan.FromSeconds(60), CancellationToken.None)).ShouldNotBeNull();
        var pending = (await Store.FindRunAsync(admitted.PipelineLoggingId, org, CancellationToken.None)).ShouldNotBeNull();
        return (org, admitted, first, second, pending);
    }

    [Fact]
    public async Task Finish_UnderTheLease_ClosesTheEntryWithTheRunsEnd_AndALostLeaseLeavesTheEntryToItsNewOwner()
    {
        var (org, admitted, first, second, pending) = await TakenOverAsync("finish");
        var id = admitted.PipelineLoggingId;
        var step = new StepLogRecord($"{id}-a2-00", id, org, "load", "test.rows", RunStatus.Running, Now.AddSeconds(62), null, null, 1, null, null, null);
        (await Queue.StartAsync(second, pending with { Status = RunStatus.Running, Attempt = 2, WorkerId = "w-2", StartTime = Now.AddSeconds(62) }, [step], Now.AddSeconds(62), CancellationToken.None)).ShouldBeTrue();
        Scalar("SELECT concurrent_running FROM org_usage_quotas WHERE org_slug = @org", ("org", org.Value)).ShouldBe(1);

        // The stale worker's end: its run row is refused (an older attempt), and the entry stays the new owner's.
        var stale = pending with { Status = RunStatus.Failed, Attempt = 1, WorkerId = "w-1", EndTime = Now.AddSeconds(63), ErrorClass = "Boom", ErrorMessage = "stale" };
        (await Queue.FinishAsync(first, stale, [], Now.AddSeconds(63), CancellationToken.None)).ShouldBeFalse();
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE queue_id = @id AND status = 'RUNNING'", ("id", admitted.QueueId)).ShouldBe(1);
        (await Store.FindRunAsync(id, org, CancellationToken.None)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Running);

        var failed = pending with
        {
            Status = RunStatus.Failed, Attempt = 2, WorkerId = "w-2", StartTime = Now.AddSeconds(62), EndTime = Now.AddSeconds(64), ErrorClass = "Boom", ErrorMessage = "it broke",
        };
        (await Queue.FinishAsync(second, failed, [step with { Status = RunStatus.Failed, EndTime = Now.AddSeconds(64), ErrorClass = "Boom", ErrorMessage = "it broke" }], Now.AddSeconds(64), CancellationToken.None))
            .ShouldBeTrue();
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE queue_id = @id AND status = 'FAILED' AND last_error = 'it broke' AND lease_expires_at IS NULL", ("id", admitted.QueueId))
            .ShouldBe(1);
        var run = (await Store.FindRunAsync(id, org, CancellationToken.None)).ShouldNotBeNull();
        (run.Status, run.ErrorMessage, run.EndTime).ShouldBe((RunStatus.Failed, "it broke", Now.AddSeconds(64)));
        (await Store.ListStepsAsync(id, org, CancellationToken.None)).ShouldHaveSingleItem().Status.ShouldBe(RunStatus.Failed);
        Scalar("SELECT concurrent_running FROM org_usage_quotas WHERE org_slug = @org", ("org", org.Value)).ShouldBe(0, "the close recounts the org's live leases");
        (await Queue.FinishAsync(second, failed, [], Now.AddSeconds(65), CancellationToken.None)).ShouldBeFalse("the entry is closed already");
    }

    [Fact]
    public async Task Start_UnderTheLease_WritesTheEntryTheRunAndItsStepsTogether_AndALostLeaseWritesNothing()
    {
        var (org, admitted, first, second, pending) = await TakenOverAsync("start");
        var id = admitted.PipelineLoggingId;

        (await Queue.StartAsync(first, Started(first), Steps(first), Now.AddSeconds(62), CancellationToken.None)).ShouldBeFalse("w-1's lease was lost");
        Scalar("SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE pipeline_logging_id = @id AND status = 'PENDING' AND attempt = 2", ("id", id)).ShouldBe(1);
        Scalar("SELECT COUNT(*) FROM org_meta_step_logs WHERE pipeline_logging_id = @id", ("id", id)).ShouldBe(0, "a lost lease writes no step rows");
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE queue_id = @id AND status = 'CLAIMED'", ("id", admitted.QueueId)).ShouldBe(1);

        (await Queue.StartAsync(second, Started(second), Steps(second), Now.AddSeconds(62), CancellationToken.None)).ShouldBeTrue();
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE queue_id = @id AND status = 'RUNNING'", ("id", admitted.QueueId)).ShouldBe(1);
        var run = (await Store.FindRunAsync(id, org, CancellationToken.None)).ShouldNotBeNull();
        (run.Status, run.Attempt, run.WorkerId, run.StartTime).ShouldBe((RunStatus.Running, 2, "w-2", Now.AddSeconds(62)));
        (await Store.ListStepsAsync(id, org, CancellationToken.None)).Select(s => (s.StepLoggingId, s.Status, s.Attempt))
            .ShouldBe([(id + "-a2-00", RunStatus.Running, 1), (id + "-a2-01", RunStatus.Pending, 0)]);

        (await Queue.StartAsync(second, Started(second), Steps(second), Now.AddSeconds(63), CancellationToken.None)).ShouldBeFalse("the entry is RUNNING already");

        PipelineRunRecord Started(QueueLease lease) =>
            pending with { Status = RunStatus.Running, Attempt = lease.Attempt, WorkerId = lease.Owner, StartTime = Now.AddSeconds(62), HeartbeatAt = Now.AddSeconds(62) };

        StepLogRecord[] Steps(QueueLease lease) =>
        [
            new($"{id}-a{lease.Attempt}-00", id, org, "load", "test.rows", RunStatus.Running, Now.AddSeconds(62), null, null, 1, null, null, null),
            new($"{id}-a{lease.Attempt}-01", id, org, "check", "test.rows", RunStatus.Pending, null, null, null, 0, null, null, null),
        ];
    }

    [Fact]
    public async Task Admit_50InParallelForAStarterOrg_AdmitsExactly6()
    {
        var org = await OrgAsync("burst", "STARTER");

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(() => Queue.AdmitAsync(Admission(org), CancellationToken.None))));

        outcomes.Count(o => o is AdmissionOutcome.Admitted).ShouldBe(6);
        outcomes.OfType<AdmissionOutcome.OverQuota>().Count().ShouldBe(44);
        outcomes.OfType<AdmissionOutcome.OverQuota>().ShouldAllBe(o => o.Limit.Name == QuotaLimit.Daily && o.Limit.Limit == 6);
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE org_slug = @org", ("org", org.Value)).ShouldBe(6);
        Scalar("SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE org_slug = @org AND pipeline_path = 'testing/rows'", ("org", org.Value)).ShouldBe(6);
    }

    [Fact]
    public async Task Claim_8ParallelClaimersOnAProfessionalOrg_TakeExactly3Leases()
    {
        var org = await OrgAsync("conc", "PROFESSIONAL");
        for (var i = 0; i < 10; i++)
        {
            (await Queue.AdmitAsync(Admission(org), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();
        }

        var leases = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => Queue.ClaimAsync($"w{i}", Now, TimeSpan.FromMinutes(1), CancellationToken.None))));

        leases.Count(l => l is not null).ShouldBe(3);
        leases.Where(l => l is not null).Select(l => l!.QueueId).Distinct().Count().ShouldBe(3);

        // One finishes: exactly one more slot.
        var first = leases.First(l => l is not null)!;
        (await Queue.CompleteAsync(first, QueueStatus.Completed, null, Now, CancellationToken.None)).ShouldBeTrue();
        (await Queue.ClaimAsync("w9", Now, TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldNotBeNull();
        (await Queue.ClaimAsync("w10", Now, TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldBeNull();
    }

    [Fact]
    public async Task LeaseExpiry_RequeuesThenFailsAfterTheLastAttempt_AndFencesTheStaleWorker()
    {
        var org = await OrgAsync("lease", "SCALE");
        var admitted = (await Queue.AdmitAsync(Admission(org, maxAttempts: 2), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();

        var first = (await Queue.ClaimAsync("dead-1", Now, TimeSpan.FromSeconds(60), CancellationToken.None)).ShouldNotBeNull();
        (await Queue.RescueExpiredAsync(Now.AddSeconds(59), CancellationToken.None)).ShouldBe(new RescueOutcome(0, 0), "the lease is still live");
        (await Queue.RenewAsync([first], Now.AddSeconds(120), Now.AddSeconds(30), CancellationToken.None)).ShouldBeEmpty();
        (await Queue.RescueExpiredAsync(Now.AddSeconds(119), CancellationToken.None)).ShouldBe(new RescueOutcome(0, 0), "renewed to 120 s");
        (await Queue.RescueExpiredAsync(Now.AddSeconds(120), CancellationToken.None)).ShouldBe(new RescueOutcome(1, 0));
        Scalar("SELECT attempt FROM org_meta_pipeline_runs WHERE pipeline_logging_id = @id", ("id", admitted.PipelineLoggingId)).ShouldBe(2);

        var second = (await Queue.ClaimAsync("w2", Now.AddSeconds(121), TimeSpan.FromSeconds(60), CancellationToken.None)).ShouldNotBeNull();
        second.Attempt.ShouldBe(2);
        (await Queue.CompleteAsync(first, QueueStatus.Completed, null, Now.AddSeconds(122), CancellationToken.None)).ShouldBeFalse("the stale worker's token no longer holds");
        (await Queue.RenewAsync([first, second], Now.AddSeconds(240), Now.AddSeconds(122), CancellationToken.None)).ShouldBe([first]);

        (await Queue.RescueExpiredAsync(Now.AddSeconds(241), CancellationToken.None)).ShouldBe(new RescueOutcome(0, 1));
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE queue_id = @id AND status = 'FAILED'", ("id", admitted.QueueId)).ShouldBe(1);
        Scalar("SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE pipeline_logging_id = @id AND status = 'FAILED' AND error_class = 'RunAbandoned'", ("id", admitted.PipelineLoggingId)).ShouldBe(1);
        (await Queue.CompleteAsync(second, QueueStatus.Completed, null, Now.AddSeconds(242), CancellationToken.None)).ShouldBeFalse();
    }

    [Fact]
    public async Task Admit_SameIdempotencyKeyTwice_IsADuplicateAndCountsOnce()
    {
        var org = await OrgAsync("idem", "STARTER");

        (await Queue.AdmitAsync(Admission(org, key: "k1"), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();
        (await Queue.AdmitAsync(Admission(org, key: "k1"), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.DuplicateKey>();

        Scalar("SELECT pipelines_run_today FROM org_usage_quotas WHERE org_slug = @org ORDER BY usage_date DESC LIMIT 1", ("org", org.Value)).ShouldBe(1);
    }

    [Fact]
    public async Task CancelQueued_ClosesTheEntryAndTheRunBeforeAnyClaim()
    {
        var org = await OrgAsync("cancel", "SCALE");
        var admitted = (await Queue.AdmitAsync(Admission(org), CancellationToken.None)).ShouldBeOfType<AdmissionOutcome.Admitted>();

        (await Queue.CancelQueuedAsync(admitted.PipelineLoggingId, Now, CancellationToken.None)).ShouldBeTrue();

        (await Queue.ClaimAsync("w", Now, TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldBeNull();
        Scalar("SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE pipeline_logging_id = @id AND status = 'CANCELLED'", ("id", admitted.PipelineLoggingId)).ShouldBe(1);
    }

    [Fact]
    public async Task EnqueueTicks_TwoSchedulesOfOnePipelineAndConcurrentTriggers_WriteOneEntryPerTick()
    {
        var org = await OrgAsync("ticks", "SCALE");
        var configs = new[] { await ScheduleAsync(org), await ScheduleAsync(org), await ScheduleAsync(org) };

        // Three schedules of the same pipeline fire at the same instant, written by three triggers at once.
        var outcomes = (await Task.WhenAll(configs.Select(c => Task.Run(() => Queue.EnqueueTicksAsync([Tick(c)], Now, CancellationToken.None))))).SelectMany(o => o).ToList();

        outcomes.Count(o => o.Status == TickStatus.Queued).ShouldBe(1);
        outcomes.Count(o => o.Status == TickStatus.Duplicate).ShouldBe(2);
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE org_slug = @org", ("org", org.Value)).ShouldBe(1);
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE org_slug = @org AND idempotency_key = @key", ("org", org.Value), ("key", Tick(configs[0]).QueueKey)).ShouldBe(1);
        Scalar("SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE org_slug = @org AND pipeline_path = 'testing/rows'", ("org", org.Value)).ShouldBe(0, "the run row is created at claim");
        Scalar("SELECT pipelines_run_today FROM org_usage_quotas WHERE org_slug = @org ORDER BY usage_date DESC LIMIT 1", ("org", org.Value)).ShouldBe(1, "counted at admission");

        // The same ticks again: every schedule already advanced.
        (await Queue.EnqueueTicksAsync([.. configs.Select(Tick)], Now, CancellationToken.None)).ShouldAllBe(o => o.Status == TickStatus.Stale);
    }

    [Fact]
    public async Task EnqueueTicks_EightTicksOfAStarterOrg_QueuesSixAndKeepsTwoSkippedEntriesWithTheReason()
    {
        var org = await OrgAsync("skip", "STARTER");
        var ticks = new List<ScheduledTick>();
        for (var i = 0; i < 8; i++)
        {
            ticks.Add(Tick(await ScheduleAsync(org, minute: i), minute: i, missed: i == 0 ? 2 : 0));
        }

        var outcomes = await Queue.EnqueueTicksAsync(ticks, Now, CancellationToken.None);

        outcomes.Count(o => o.Status == TickStatus.Queued).ShouldBe(6);
        outcomes.Where(o => o.Status == TickStatus.Skipped).Select(o => o.Reason).ShouldAllBe(r => r!.Contains("daily limit of 6"));
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE org_slug = @org AND status = 'QUEUED' AND queue_id = pipeline_logging_id", ("org", org.Value)).ShouldBe(6);
        Scalar(
            "SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE org_slug = @org AND status = 'SKIPPED' AND pipeline_logging_id IS NULL AND last_error LIKE '%daily limit of 6%'",
            ("org", org.Value)).ShouldBe(2);
        Scalar("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE queue_id = @id AND last_error LIKE 'Catch-up: 2 earlier%'", ("id", ticks[0].RunId)).ShouldBe(1);
        Scalar("SELECT pipelines_run_today FROM org_usage_quotas WHERE org_slug = @org ORDER BY usage_date DESC LIMIT 1", ("org", org.Value)).ShouldBe(6);
        Scalar("SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE org_slug = @org AND pipeline_path = 'testing/rows'", ("org", org.Value)).ShouldBe(0);
        (await Queue.GetSnapshotAsync(Now, CancellationToken.None)).Queued.ShouldBeGreaterThanOrEqualTo(6);
    }

    [Fact]
    public async Task ScheduledRunBeforeItsClaim_IsFoundListedAndCancellableAsAPendingRun()
    {
        var org = await OrgAsync("defer", "SCALE");
        var tick = Tick(await ScheduleAsync(org));
        (await Queue.EnqueueTicksAsync([tick], Now, CancellationToken.None)).ShouldHaveSingleItem().Status.ShouldBe(TickStatus.Queued);

        var run = (await Store.FindRunAsync(tick.RunId, org, CancellationToken.None)).ShouldNotBeNull();
        run.Status.ShouldBe(RunStatus.Pending);
        run.Trigger.ShouldBe(RunTrigger.Scheduler);
        run.PipelinePath.ShouldBe(TestPipelines.Rows);
        run.Parameters["date"].ShouldBe("2030-03-14");
        (await Store.FindRunAsync(tick.RunId, OrgSlug.From("someone_else"), CancellationToken.None)).ShouldBeNull("scoped by the org");
        var page = await Store.ListRunsAsync(new RunQuery(org, RunStatus.Pending, TestPipelines.Rows, null, 10, null), CancellationToken.None);
        page.Runs.ShouldHaveSingleItem().PipelineLoggingId.ShouldBe(tick.RunId);

        (await Store.RequestCancelAsync(tick.RunId, org, Now, CancellationToken.None)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Cancelled);
        (await Queue.ClaimAsync("w", Now, TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldBeNull("a cancelled entry is never claimed");
        (await Store.ListRunsAsync(new RunQuery(org, null, TestPipelines.Rows, null, 10, null), CancellationToken.None)).Runs.ShouldHaveSingleItem().Status.ShouldBe(RunStatus.Cancelled);
    }

    [Fact]
    public async Task ScheduledEntryClaim_CarriesWhatItsRunRowIsCreatedFrom()
    {
        var org = await OrgAsync("claim", "SCALE");
        var tick = Tick(await ScheduleAsync(org));
        await Queue.EnqueueTicksAsync([tick], Now, CancellationToken.None);
        var listedBeforeTheClaim = (await Store.FindRunAsync(tick.RunId, org, CancellationToken.None)).ShouldNotBeNull();

        var lease = (await Queue.ClaimAsync("w", Now.AddMinutes(7), TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldNotBeNull();

        lease.PipelineLoggingId.ShouldBe(tick.RunId);
        var deferred = lease.Deferred.ShouldNotBeNull();
        deferred.Pipeline.ShouldBe(TestPipelines.Rows);
        deferred.Parameters.ShouldBe(tick.Parameters);
        deferred.ScheduledFor.ShouldBe(tick.ScheduledFor);
        deferred.QueuedAt.ShouldBe(Now, "when the trigger queued it, not when it was claimed");
        listedBeforeTheClaim.CreatedAt.ShouldBe(deferred.QueuedAt);
        (await Store.FindRunAsync(tick.RunId, org, CancellationToken.None)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Pending, "claimed, its row not yet created");

        var row = new PipelineRunRecord(
            tick.RunId, org, $"{org}-testing-rows", TestPipelines.Rows, RunTrigger.Scheduler, "scheduler", null, null, RunStatus.Pending,
            tick.Parameters, "{}", null, null, null, null, lease.Attempt, Now);
        await Store.CreateRunAsync(row, CancellationToken.None);
        (await Store.FindRunAsync(tick.RunId, org, CancellationToken.None)).ShouldNotBeNull().ResolvedConfig.ShouldBe("{}");
        (await Store.ListRunsAsync(new RunQuery(org, null, TestPipelines.Rows, null, 10, null), CancellationToken.None)).Runs.ShouldHaveSingleItem();
        (await Queue.CompleteAsync(lease, QueueStatus.Completed, null, Now, CancellationToken.None)).ShouldBeTrue();
    }

    [Fact]
    public async Task CancelOfAScheduledRunClaimedBeforeItsRowExists_CreatesTheRowWithTheRequestForTheWorkerToFind()
    {
        var (org, tick, lease) = await ClaimedScheduledRunAsync("cancel");

        var cancelled = (await Store.RequestCancelAsync(tick.RunId, org, Now.AddSeconds(2), CancellationToken.None)).ShouldNotBeNull();

        cancelled.Status.ShouldBe(RunStatus.Pending);
        cancelled.CancelRequestedAt.ShouldBe(Now.AddSeconds(2));
        cancelled.CreatedAt.ShouldBe(Now, "the entry's created_at");
        cancelled.Attempt.ShouldBe(lease.Attempt);
        var row = new PipelineRunRecord(
            tick.RunId, org, $"{org}-testing-rows", TestPipelines.Rows, RunTrigger.Scheduler, "scheduler", null, null, RunStatus.Pending,
            tick.Parameters, "{}", null, null, null, null, lease.Attempt, Now);
        await Should.ThrowAsync<DuplicateRowException>(() => Store.CreateRunAsync(row, CancellationToken.None));
        (await Store.FindRunAsync(tick.RunId, org, CancellationToken.None)).ShouldNotBeNull().CancelRequestedAt.ShouldBe(Now.AddSeconds(2), "what the worker reads back");

        // Asked again once the worker has started it: the request stays the first one.
        (await Store.RequestCancelAsync(tick.RunId, org, Now.AddSeconds(3), CancellationToken.None)).ShouldNotBeNull().CancelRequestedAt.ShouldBe(Now.AddSeconds(2));
    }

    [Fact]
    public async Task CancelOfAScheduledRunWhoseWorkerCreatedItsRow_RecordsTheRequestOnThatRow()
    {
        var (org, tick, lease) = await ClaimedScheduledRunAsync("cancel2");
        await Store.CreateRunAsync(
            new PipelineRunRecord(
                tick.RunId, org, $"{org}-testing-rows", TestPipelines.Rows, RunTrigger.Scheduler, "scheduler", null, null, RunStatus.Pending,
                tick.Parameters, "{}", null, null, null, null, lease.Attempt, Now),
            CancellationToken.None);

        var cancelled = (await Store.RequestCancelAsync(tick.RunId, org, Now.AddSeconds(2), CancellationToken.None)).ShouldNotBeNull();

        cancelled.CancelRequestedAt.ShouldBe(Now.AddSeconds(2));
        cancelled.ResolvedConfig.ShouldBe("{}", "the worker's row, not one made by the cancel");
    }

    [Fact]
    public async Task AdmitWithoutSchedule_ApiEntriesAreNotDeferred()
    {
        var org = await OrgAsync("api", "SCALE");
        await Queue.AdmitAsync(Admission(org), CancellationToken.None);

        (await Queue.ClaimAsync("w", Now, TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldNotBeNull().Deferred.ShouldBeNull();
    }

    /// <summary>A SCALE org's scheduled tick, queued at <see cref="Now"/> and claimed a second later (its run row not created).</summary>
    private async Task<(OrgSlug Org, ScheduledTick Tick, QueueLease Lease)> ClaimedScheduledRunAsync(string prefix)
    {
        var org = await OrgAsync(prefix, "SCALE");
        var tick = Tick(await ScheduleAsync(org));
        await Queue.EnqueueTicksAsync([tick], Now, CancellationToken.None);
        return (org, tick, (await Queue.ClaimAsync("w", Now.AddSeconds(1), TimeSpan.FromMinutes(1), CancellationToken.None)).ShouldNotBeNull());
    }

    /// <summary>An active hourly schedule of <see cref="TestPipelines.Rows"/> at <paramref name="minute"/>, due at <see cref="Now"/> + minute.</summary>
    private async Task<ScheduleConfig> ScheduleAsync(OrgSlug org, int minute = 0)
    {
        var config = new ScheduleConfig(
            Guid.NewGuid().ToString(), org, TestPipelines.Rows, $"{minute} * * * *", "UTC", new Dictionary<string, string>(), true, Now.AddMinutes(minute), null, Now, Now);
        await Schedules.CreateAsync(config, CancellationToken.None);
        return config;
    }

    private static ScheduledTick Tick(ScheduleConfig config) => Tick(config, 0, 0);

    private static ScheduledTick Tick(ScheduleConfig config, int minute, int missed = 0) => new(
        config.ConfigId, config.OrgSlug, config.Pipeline, config.NextRunTime!.Value, Now.AddMinutes(minute), Now.AddMinutes(minute + 60), missed,
        Guid.CreateVersion7(Now).ToString(), new Dictionary<string, string> { ["date"] = "2030-03-14" }, 3);

    private async Task<OrgSlug> OrgAsync(string prefix, string plan)
    {
        var org = PipelineHarness.NewSlug(prefix);
        await ArrangeOrgAsync(org, plan);
        return OrgSlug.From(org);
    }

    private static RunAdmission Admission(OrgSlug org, int maxAttempts = 3, string? key = null)
    {
        var id = Guid.NewGuid().ToString();
        var run = new PipelineRunRecord(
            id, org, $"{org}-testing-rows", TestPipelines.Rows, RunTrigger.Api, null, null, null, RunStatus.Pending,
            new Dictionary<string, string> { ["date"] = "2025-11-20" }, null, null, null, null, null, 1, Now, key);
        return new RunAdmission(run, QueuePriority.Api, maxAttempts, null, CountsAgainstQuota: true, Now);
    }
}
