using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Convergence.Storage.Postgres;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Convergence.IntegrationTests.Storage;

/// <summary>The SQLite control plane, through the app's services (bootstrapped through the API).</summary>
public sealed class SqliteControlPlaneStoreTests : ControlPlaneStoreContract, IDisposable
{
    // The app's maintenance loop must not heartbeat or fail the runs these tests arrange (its period is an hour), and
    // its worker pool must not claim the queue entries they arrange: it is not started at all (its first pass after
    // bootstrap could otherwise race the arrangement).
    private readonly ConvergenceApiFactory _factory = new(ConvergenceApiFactory.OnSqlite(new Dictionary<string, string?>
    {
        ["CONVERGENCE_QUEUE_POLL_SECONDS"] = "3600",
        ["CONVERGENCE_RUN_HEARTBEAT_SECONDS"] = "3600",
    }))
    {
        ConfigureServices = services =>
        {
            foreach (var worker in services.Where(d => d.ImplementationType == typeof(Convergence.Api.Pipelines.PipelineWorkerService)).ToList())
            {
                services.Remove(worker);
            }
        },
    };

    protected override IControlPlaneStore Store => _factory.Services.GetRequiredService<IControlPlaneStore>();

    public override async Task InitializeAsync() => await _factory.BootstrapAsync();

    public void Dispose() => _factory.Dispose();

    protected override Task EnqueueAsync(OrgSlug org, string pipelineLoggingId, string status)
    {
        _factory.ControlPlane().Execute(
            """
            INSERT INTO org_pipeline_execution_queue (queue_id, org_slug, pipeline, priority, status, attempts, max_attempts, pipeline_logging_id, created_at, updated_at)
            VALUES ($id, $org, 'openai/usage_cost', 0, $status, 0, 3, $run, '2030-03-14T12:00:00.0000000Z', '2030-03-14T12:00:00.0000000Z')
            """,
            ("$id", "q-" + pipelineLoggingId), ("$org", org.Value), ("$status", status), ("$run", pipelineLoggingId));
        return Task.CompletedTask;
    }
}

/// <summary>The PostgreSQL control plane, bootstrapped by the store itself on a fresh database of the test server.</summary>
public sealed class PostgresControlPlaneStoreTests : ControlPlaneStoreContract
{
    private PostgresControlPlaneSource? _source;
    private IControlPlaneStore? _store;

    protected override IControlPlaneStore Store => _store!;

    public override async Task InitializeAsync()
    {
        _source = Source(PostgresServer.CreateDatabase("cp"));
        _store = new PostgresControlPlaneStore(_source);
        (await _store.IsBootstrappedAsync(default)).ShouldBeFalse();
        var outcome = await _store.BootstrapAsync(Tables, new BootstrapOptions(false, false), default);
        outcome.DatasetCreated.ShouldBeTrue();
        outcome.TablesCreated.Count.ShouldBe(Tables.Count);
    }

    public override async Task DisposeAsync() => await _source!.DataSource.DisposeAsync();

    [Fact]
    public async Task Bootstrap_TwoInstancesAtOnceOnAFreshDatabase_BothSucceedAndOneCreates()
    {
        var connection = PostgresServer.CreateDatabase("cp");
        var sources = Enumerable.Range(0, 4).Select(_ => Source(connection)).ToList();
        try
        {
            var outcomes = await Task.WhenAll(sources.Select(s => new PostgresControlPlaneStore(s).BootstrapAsync(Tables, new BootstrapOptions(false, false), default)));

            outcomes.Count(o => o.DatasetCreated).ShouldBe(1);
            outcomes.Sum(o => o.TablesCreated.Count).ShouldBe(Tables.Count);
            (await new PostgresControlPlaneStore(sources[0]).IsBootstrappedAsync(default)).ShouldBeTrue();
        }
        finally
        {
            foreach (var source in sources)
            {
                await source.DataSource.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Bootstrap_ForceRecreateDataset_DropsTheSchemaWithItsRows()
    {
        await ArrangeOrgAsync(OrgA);

        var outcome = await Store.BootstrapAsync(Tables, new BootstrapOptions(true, false), default);

        outcome.DatasetCreated.ShouldBeTrue();
        outcome.TablesCreated.Count.ShouldBe(Tables.Count);
        (await Store.FindOrganizationAsync(OrgA, default)).ShouldBeNull();
    }

    [Fact]
    public async Task IsBootstrapped_ATableMissing_IsFalse()
    {
        var fresh = new PostgresControlPlaneStore(_source!);
        await using (var connection = await _source!.DataSource.OpenConnectionAsync())
        await using (var drop = new NpgsqlCommand("DROP TABLE org_audit_logs", connection))
        {
            await drop.ExecuteNonQueryAsync();
        }

        (await fresh.IsBootstrappedAsync(default)).ShouldBeFalse();
    }

    [Fact]
    public async Task ListRuns_PageToken_RoundTripsMicroseconds()
    {
        // Two runs a microsecond apart: a token that rounded to milliseconds would repeat or skip one.
        var created = Now.AddTicks(1_234_560);
        await Store.CreateRunAsync(Run("us-1", OrgA, created), default);
        await Store.CreateRunAsync(Run("us-2", OrgA, created.AddTicks(10)), default);

        var first = await Store.ListRunsAsync(new RunQuery(OrgA, null, null, null, 1, null), default);
        var second = await Store.ListRunsAsync(new RunQuery(OrgA, null, null, null, 1, first.NextPageToken), default);

        first.Runs.Single().PipelineLoggingId.ShouldBe("us-2");
        second.Runs.Single().PipelineLoggingId.ShouldBe("us-1");
        second.Runs.Single().CreatedAt.ShouldBe(created);
        second.NextPageToken.ShouldBeNull();
    }

    protected override async Task EnqueueAsync(OrgSlug org, string pipelineLoggingId, string status)
    {
        await using var connection = await _source!.DataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO org_pipeline_execution_queue (queue_id, org_slug, pipeline, priority, status, attempts, max_attempts, pipeline_logging_id, created_at, updated_at)
            VALUES (@id, @org, 'openai/usage_cost', 0, @status, 0, 3, @run, now(), now())
            """,
            connection);
        command.Parameters.AddWithValue("id", "q-" + pipelineLoggingId);
        command.Parameters.AddWithValue("org", org.Value);
        command.Parameters.AddWithValue("status", status);
        command.Parameters.AddWithValue("run", pipelineLoggingId);
        await command.ExecuteNonQueryAsync();
    }

    private static PostgresControlPlaneSource Source(string connection) =>
        new(NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connection) { SearchPath = DatasetRef.CentralName }.ConnectionString));
}

/// <summary>
/// What every control-plane store must do: idempotent bootstrap, transactions that commit or roll back together, org
/// scoping of every org read, the fencing of run rows, keyset pages, compare-and-swap of ciphertexts. Timestamps are
/// whole microseconds (PostgreSQL's precision).
/// </summary>
public abstract class ControlPlaneStoreContract : IAsyncLifetime
{
    protected static readonly DateTimeOffset Now = new(2030, 3, 14, 12, 0, 0, TimeSpan.Zero);
    protected static readonly OrgSlug OrgA = OrgSlug.From("cp_org_a");
    protected static readonly OrgSlug OrgB = OrgSlug.From("cp_org_b");
    protected static readonly DateOnly Today = DateOnly.FromDateTime(Now.UtcDateTime);

    protected static IReadOnlyList<TableSchema> Tables { get; } =
        TableSchema.LoadDirectory(Path.Combine(AppContext.BaseDirectory, "configs", "setup", "bootstrap", "schemas"));

    protected abstract IControlPlaneStore Store { get; }

    public abstract Task InitializeAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Adds a queue entry for a run (the run queue's own table, which the abandoned-run sweep consults).</summary>
    protected abstract Task EnqueueAsync(OrgSlug org, string pipelineLoggingId, string status);

    [Fact]
    public async Task Bootstrap_Again_CreatesNothingAndReportsEveryTableExisting()
    {
        var outcome = await Store.BootstrapAsync(Tables, new BootstrapOptions(false, false), default);

        outcome.DatasetCreated.ShouldBeFalse();
        outcome.TablesCreated.ShouldBeEmpty();
        outcome.TablesExisting.ShouldBe(Tables.Select(t => t.Name), ignoreOrder: true);
        (await Store.IsBootstrappedAsync(default)).ShouldBeTrue();
        (await Store.IsReachableAsync(default)).ShouldBeTrue();
    }

    [Fact]
    public async Task Bootstrap_ForceRecreateTables_RecreatesEveryTableEmpty()
    {
        await ArrangeOrgAsync(OrgA);

        var outcome = await Store.BootstrapAsync(Tables, new BootstrapOptions(false, true), default);

        outcome.DatasetCreated.ShouldBeFalse();
        outcome.TablesCreated.ShouldBe(Tables.Select(t => t.Name), ignoreOrder: true);
        outcome.TablesExisting.ShouldBeEmpty();
        (await Store.FindOrganizationAsync(OrgA, default)).ShouldBeNull();
        (await Store.IsBootstrappedAsync(default)).ShouldBeTrue();
    }

    [Fact]
    public async Task Bootstrap_SchemasLackingARequiredTable_Throws()
    {
        var ex = await Should.ThrowAsync<InvalidOperationException>(() =>
            Store.BootstrapAsync([.. Tables.Where(t => t.Name != "org_audit_logs")], new BootstrapOptions(false, false), default));

        ex.Message.ShouldContain("org_audit_logs");
    }

    [Fact]
    public async Task Transaction_Committed_StoresOrgSubscriptionQuotaAndKeyTogether()
    {
        await ArrangeOrgAsync(OrgA);

        (await Store.FindOrganizationAsync(OrgA, default)).ShouldBe(Profile(OrgA));
        var expected = Key(OrgA);
        var key = (await Store.ListApiKeysAsync(OrgA, default)).ShouldHaveSingleItem();
        key.Scopes.ShouldBe(expected.Scopes);
        (key with { Scopes = expected.Scopes }).ShouldBe(expected);
        var lookup = (await Store.FindApiKeyByHashAsync(Key(OrgA).KeyHash, default)).ShouldNotBeNull();
        lookup.OrgStatus.ShouldBe("ACTIVE");
        lookup.Key.OrgApiKeyId.ShouldBe(Key(OrgA).OrgApiKeyId);
        (await Store.FindApiKeyByHashAsync("no-such-hash", default)).ShouldBeNull();
    }

    [Fact]
    public async Task Transaction_DisposedWithoutCommit_LeavesNothing()
    {
        await using (var transaction = await Store.BeginTransactionAsync(default))
        {
            await transaction.InsertOrganizationAsync(Profile(OrgA), default);
            await transaction.InsertSubscriptionAsync(Subscription(OrgA), default);
            await transaction.InsertApiKeyAsync(Key(OrgA), default);
            await transaction.RecordAuditAsync(Audit("rolled-back", OrgA, Now), default);
        }

        (await Store.FindOrganizationAsync(OrgA, default)).ShouldBeNull();
        (await Store.GetOrganizationOverviewAsync(OrgA, Today, default)).ShouldBeNull();
        (await Store.ListApiKeysAsync(OrgA, default)).ShouldBeEmpty();
        (await Store.FindApiKeyByHashAsync(Key(OrgA).KeyHash, default)).ShouldBeNull();
        (await Store.ListAuditAsync(OrgA, 10, default)).ShouldBeEmpty();
    }

    [Fact]
    public async Task InsertOrganization_SameSlugTwice_IsADuplicateRow()
    {
        await ArrangeOrgAsync(OrgA);

        await using var transaction = await Store.BeginTransactionAsync(default);
        await Should.ThrowAsync<DuplicateRowException>(() => transaction.InsertOrganizationAsync(Profile(OrgA), default));
    }

    [Fact]
    public async Task UpdateOrganization_ChangesProfileAndSubscription_OnlyOfThatOrg()
    {
        await ArrangeOrgAsync(OrgA);
        var changed = Profile(OrgA) with { CompanyName = "Renamed", Status = "SUSPENDED", SubscriptionPlan = "PROFESSIONAL", UpdatedAt = Now.AddHours(1) };

        await using (var transaction = await Store.BeginTransactionAsync(default))
        {
            (await transaction.UpdateOrganizationAsync(changed, default)).ShouldBeTrue();
            (await transaction.UpdateOrganizationAsync(Profile(OrgB), default)).ShouldBeFalse();
            await transaction.UpdateSubscriptionAsync(Subscription(OrgA) with { PlanName = "PROFESSIONAL", DailyLimit = 25, TrialEndsAt = null }, default);
            await transaction.CommitAsync(default);
        }

        (await Store.FindOrganizationAsync(OrgA, default)).ShouldBe(changed);
        var overview = (await Store.GetOrganizationOverviewAsync(OrgA, Today, default)).ShouldNotBeNull();
        overview.Subscription.ShouldNotBeNull().DailyLimit.ShouldBe(25);
        overview.Subscription.TrialEndsAt.ShouldBeNull();
        (await Store.FindApiKeyByHashAsync(Key(OrgA).KeyHash, default)).ShouldNotBeNull().OrgStatus.ShouldBe("SUSPENDED");
    }

    [Fact]
    public async Task Overview_ReadsProfileSubscriptionAndLatestQuota_AnEarlierDayCountsZeroToday()
    {
        await ArrangeOrgAsync(OrgA);
        await ArrangeOrgAsync(OrgB, quota: false);
        await using (var transaction = await Store.BeginTransactionAsync(default))
        {
            await transaction.InsertUsageQuotaAsync(Quota(OrgA, Today.AddDays(-2)) with { PipelinesRunToday = 9 }, default);
            await transaction.CommitAsync(default);
        }

        var overview = (await Store.GetOrganizationOverviewAsync(OrgA, Today, default)).ShouldNotBeNull();
        overview.Profile.ShouldBe(Profile(OrgA));
        overview.Subscription.ShouldBe(Subscription(OrgA));
        overview.Quota.ShouldBe(Quota(OrgA, Today));

        var tomorrow = (await Store.GetOrganizationOverviewAsync(OrgA, Today.AddDays(1), default)).ShouldNotBeNull().Quota.ShouldNotBeNull();
        tomorrow.UsageDate.ShouldBe(Today.AddDays(1));
        tomorrow.PipelinesRunToday.ShouldBe(0);
        tomorrow.PipelinesRunMonth.ShouldBe(Quota(OrgA, Today).PipelinesRunMonth);

        var bare = (await Store.GetOrganizationOverviewAsync(OrgB, Today, default)).ShouldNotBeNull();
        bare.Quota.ShouldBeNull();
        bare.Subscription.ShouldNotBeNull();
        (await Store.GetOrganizationOverviewAsync(OrgSlug.From("cp_org_none"), Today, default)).ShouldBeNull();
    }

    [Fact]
    public async Task ApiKeys_ExpireRevokeAndTouch_AffectOnlyThatOrgsKeys()
    {
        await ArrangeOrgAsync(OrgA);
        await ArrangeOrgAsync(OrgB);
        var second = Key(OrgA) with { OrgApiKeyId = "key-a2", KeyHash = "hash-a2", CreatedAt = Now.AddMinutes(1) };
        await using (var transaction = await Store.BeginTransactionAsync(default))
        {
            await transaction.InsertApiKeyAsync(second, default);
            (await transaction.ExpireApiKeysAsync(OrgA, Now.AddDays(1), exceptKeyId: "key-a2", default)).ShouldBe(1);
            (await transaction.RevokeApiKeyAsync(OrgB, "key-a2", Now, default)).ShouldBeFalse();
            (await transaction.RevokeApiKeyAsync(OrgA, "key-a2", Now, default)).ShouldBeTrue();
            (await transaction.RevokeApiKeyAsync(OrgA, "key-a2", Now, default)).ShouldBeFalse();
            await transaction.CommitAsync(default);
        }

        await Store.TouchApiKeyAsync(OrgB, Key(OrgA).OrgApiKeyId, Now.AddHours(1), default);
        await Store.TouchApiKeyAsync(OrgA, Key(OrgA).OrgApiKeyId, Now.AddHours(2), default);

        var keys = await Store.ListApiKeysAsync(OrgA, default);
        keys.Select(k => k.OrgApiKeyId).ShouldBe([Key(OrgA).OrgApiKeyId, "key-a2"]);
        keys[0].ExpiresAt.ShouldBe(Now.AddDays(1));
        keys[0].LastUsedAt.ShouldBe(Now.AddHours(2));
        keys[1].IsActive.ShouldBeFalse();
        keys[1].RevokedAt.ShouldBe(Now);
        (await Store.ListApiKeysAsync(OrgB, default)).ShouldHaveSingleItem().ExpiresAt.ShouldBeNull();

        await using (var transaction = await Store.BeginTransactionAsync(default))
        {
            (await transaction.RevokeAllApiKeysAsync(OrgA, Now.AddHours(3), default)).ShouldBe(1);
            await transaction.CommitAsync(default);
        }

        (await Store.ListApiKeysAsync(OrgA, default)).ShouldAllBe(k => !k.IsActive);
        (await Store.ListApiKeysAsync(OrgB, default)).ShouldAllBe(k => k.IsActive);
    }

    [Fact]
    public async Task CreateRun_SameIdempotencyKeyInTheOrg_IsADuplicateRow_AnotherOrgMayReuseIt()
    {
        var run = Run("run-1", OrgA, Now) with { IdempotencyKey = "idem-1" };
        await Store.CreateRunAsync(run, default);

        await Should.ThrowAsync<DuplicateRowException>(() => Store.CreateRunAsync(Run("run-2", OrgA, Now) with { IdempotencyKey = "idem-1" }, default));
        await Store.CreateRunAsync(Run("run-3", OrgB, Now) with { IdempotencyKey = "idem-1" }, default);

        var found = (await Store.FindRunByIdempotencyKeyAsync(OrgA, "idem-1", default)).ShouldNotBeNull();
        found.PipelineLoggingId.ShouldBe("run-1");
        found.Parameters.ShouldBe(run.Parameters);
        JsonDocument.Parse(found.ResolvedConfig!).RootElement.GetProperty("steps").GetArrayLength().ShouldBe(1);
        (await Store.FindRunByIdempotencyKeyAsync(OrgB, "idem-1", default)).ShouldNotBeNull().PipelineLoggingId.ShouldBe("run-3");
        (await Store.FindRunAsync("run-1", OrgB, default)).ShouldBeNull();
        (await Store.FindRunAsync("run-1", null, default)).ShouldNotBeNull().OrgSlug.ShouldBe(OrgA);
    }

    [Fact]
    public async Task SaveRun_PlatformRunWithoutOrg_ReadsBackWithoutOrg()
    {
        await Store.SaveRunAsync(Run("platform", null, Now), default);

        (await Store.FindRunAsync("platform", null, default)).ShouldNotBeNull().OrgSlug.ShouldBeNull();
        (await Store.FindRunAsync("platform", OrgA, default)).ShouldBeNull();
    }

    [Fact]
    public async Task SaveRun_IsFencedByAttempt_AndAFinishedRunIsFinal()
    {
        await Store.CreateRunAsync(Run("fenced", OrgA, Now) with { Attempt = 2, Status = RunStatus.Running, StartTime = Now }, default);

        // A worker of an older lease reports late: ignored.
        await Store.SaveRunAsync(Run("fenced", OrgA, Now) with { Attempt = 1, Status = RunStatus.Failed, EndTime = Now.AddMinutes(1), ErrorClass = "Stale" }, default);
        var stored = (await Store.FindRunAsync("fenced", OrgA, default)).ShouldNotBeNull();
        stored.Status.ShouldBe(RunStatus.Running);
        stored.Attempt.ShouldBe(2);

        await Store.SaveRunAsync(Run("fenced", OrgA, Now) with { Attempt = 2, Status = RunStatus.Completed, StartTime = Now, EndTime = Now.AddMinutes(2) }, default);
        await Store.SaveRunAsync(Run("fenced", OrgA, Now) with { Attempt = 3, Status = RunStatus.Running, StartTime = Now.AddMinutes(3) }, default);

        stored = (await Store.FindRunAsync("fenced", OrgA, default)).ShouldNotBeNull();
        stored.Status.ShouldBe(RunStatus.Completed);
        stored.Attempt.ShouldBe(2);
        stored.EndTime.ShouldBe(Now.AddMinutes(2));
        stored.DurationMs.ShouldBe(120_000);
    }

    [Fact]
    public async Task ListRuns_PagesNewestFirstAcrossEqualCreatedAt_FiltersAndScopesByOrg()
    {
        var sameInstant = Now.AddTicks(4_560); // 456 µs
        foreach (var id in new[] { "r-b", "r-e", "r-a", "r-d", "r-c" })
        {
            await Store.CreateRunAsync(Run(id, OrgA, sameInstant), default);
        }

        await Store.CreateRunAsync(Run("r-newest", OrgA, sameInstant.AddTicks(10)) with { Status = RunStatus.Failed, PipelinePath = "gcp/billing", PipelineId = "gcp-billing" }, default);
        await Store.CreateRunAsync(Run("r-old", OrgA, Now.AddDays(-2)), default);
        await Store.CreateRunAsync(Run("r-other-org", OrgB, sameInstant), default);

        var ids = new List<string>();
        string? token = null;
        var pages = 0;
        do
        {
            var page = await Store.ListRunsAsync(new RunQuery(OrgA, null, null, Now.AddDays(-1), 2, token), default);
            page.Runs.Count.ShouldBeLessThanOrEqualTo(2);
            ids.AddRange(page.Runs.Select(r => r.PipelineLoggingId));
            token = page.NextPageToken;
            pages++;
        }
        while (token is not null && pages < 10);

        ids.ShouldBe(["r-newest", "r-e", "r-d", "r-c", "r-b", "r-a"]);
        pages.ShouldBe(3);

        (await Store.ListRunsAsync(new RunQuery(OrgA, RunStatus.Failed, null, null, 10, null), default)).Runs.ShouldHaveSingleItem().PipelineLoggingId.ShouldBe("r-newest");
        (await Store.ListRunsAsync(new RunQuery(OrgA, null, "gcp-billing", null, 10, null), default)).Runs.ShouldHaveSingleItem().PipelineLoggingId.ShouldBe("r-newest");
        (await Store.ListRunsAsync(new RunQuery(OrgA, null, "gcp/billing", null, 10, null), default)).Runs.ShouldHaveSingleItem();
        (await Store.ListRunsAsync(new RunQuery(OrgB, null, null, null, 10, null), default)).Runs.ShouldHaveSingleItem().PipelineLoggingId.ShouldBe("r-other-org");
        // Without an org every org's runs are listed (platform runs of the bootstrap aside).
        (await Store.ListRunsAsync(new RunQuery(null, null, null, null, 100, null), default)).Runs.Count(r => r.OrgSlug is not null).ShouldBe(8);
        await Should.ThrowAsync<RequestValidationException>(() => Store.ListRunsAsync(new RunQuery(OrgA, null, null, null, 2, "not-a-token"), default));
    }

    [Fact]
    public async Task StepsAndDqResults_UpsertAndListInOrder_ScopedByOrg()
    {
        await Store.CreateRunAsync(Run("steps", OrgA, Now), default);
        await Store.SaveStepAsync(Step("steps-2", "steps", OrgA, RunStatus.Pending), default);
        await Store.SaveStepAsync(Step("steps-1", "steps", OrgA, RunStatus.Running), default);
        await Store.SaveStepAsync(Step("steps-1", "steps", OrgA, RunStatus.Completed) with { EndTime = Now.AddSeconds(5), RowsProcessed = 42 }, default);
        await Store.SaveDqResultAsync(Dq("dq-2", "steps", OrgA, Now.AddSeconds(1)), default);
        await Store.SaveDqResultAsync(Dq("dq-1", "steps", OrgA, Now.AddSeconds(1)), default);
        await Store.SaveDqResultAsync(Dq("dq-0", "steps", OrgA, Now.AddSeconds(2)) with { FailingSample = null }, default);

        var steps = await Store.ListStepsAsync("steps", OrgA, default);
        steps.Select(s => s.StepLoggingId).ShouldBe(["steps-1", "steps-2"]);
        steps[0].Status.ShouldBe(RunStatus.Completed);
        steps[0].RowsProcessed.ShouldBe(42);
        steps[0].DurationMs.ShouldBe(5_000);
        Canonical(steps[0].Metadata).ShouldBe(Canonical(Step("x", "x", OrgA, "x").Metadata));
        steps[1].Metadata.ShouldBeNull();
        (await Store.ListStepsAsync("steps", null, default)).Count.ShouldBe(2);
        (await Store.ListStepsAsync("steps", OrgB, default)).ShouldBeEmpty();

        var dq = await Store.ListDqResultsAsync("steps", OrgA, default);
        dq.Select(d => d.DqResultId).ShouldBe(["dq-1", "dq-2", "dq-0"]);
        JsonDocument.Parse(dq[0].FailingSample!).RootElement[0].GetProperty("cost").GetDecimal().ShouldBe(-1.5m);
        dq[0].CreatedAt.ShouldBe(Now.AddSeconds(1));
        dq[2].FailingSample.ShouldBeNull();
        (await Store.ListDqResultsAsync("steps", OrgB, default)).ShouldBeEmpty();
    }

    [Fact]
    public async Task RequestCancel_ThenHeartbeat_ReturnsTheCancelledRunsOfThatWorker()
    {
        await Store.CreateRunAsync(Run("hb-1", OrgA, Now) with { Status = RunStatus.Running, WorkerId = "w1", HeartbeatAt = Now }, default);
        await Store.CreateRunAsync(Run("hb-2", OrgA, Now) with { Status = RunStatus.Running, WorkerId = "w1", HeartbeatAt = Now }, default);
        await Store.CreateRunAsync(Run("hb-3", OrgA, Now) with { Status = RunStatus.Running, WorkerId = "w2", HeartbeatAt = Now }, default);
        await Store.CreateRunAsync(Run("hb-done", OrgA, Now) with { Status = RunStatus.Completed, WorkerId = "w1", HeartbeatAt = Now }, default);

        (await Store.RequestCancelAsync("hb-1", OrgB, Now.AddSeconds(1), default)).ShouldBeNull();
        (await Store.RequestCancelAsync("hb-1", OrgA, Now.AddSeconds(1), default)).ShouldNotBeNull().CancelRequestedAt.ShouldBe(Now.AddSeconds(1));
        (await Store.RequestCancelAsync("hb-1", OrgA, Now.AddSeconds(9), default)).ShouldNotBeNull().CancelRequestedAt.ShouldBe(Now.AddSeconds(1));
        (await Store.RequestCancelAsync("hb-3", null, Now.AddSeconds(1), default)).ShouldNotBeNull();
        (await Store.RequestCancelAsync("hb-done", OrgA, Now.AddSeconds(1), default)).ShouldNotBeNull().CancelRequestedAt.ShouldBeNull();

        (await Store.HeartbeatAsync("w1", Now.AddSeconds(15), default)).ShouldBe(["hb-1"]);
        (await Store.FindRunAsync("hb-2", OrgA, default)).ShouldNotBeNull().HeartbeatAt.ShouldBe(Now.AddSeconds(15));
        (await Store.FindRunAsync("hb-3", OrgA, default)).ShouldNotBeNull().HeartbeatAt.ShouldBe(Now);
        (await Store.FindRunAsync("hb-done", OrgA, default)).ShouldNotBeNull().HeartbeatAt.ShouldBe(Now);
    }

    [Fact]
    public async Task FailAbandonedRuns_FailsStaleOrphansAndTheirSteps_SkipsRunsTheQueueStillHolds()
    {
        await Store.CreateRunAsync(Run("stale", OrgA, Now) with { Status = RunStatus.Running, HeartbeatAt = Now.AddMinutes(-10) }, default);
        await Store.CreateRunAsync(Run("never-beat", OrgA, Now) with { Status = RunStatus.Pending }, default);
        await Store.CreateRunAsync(Run("queued", OrgA, Now) with { Status = RunStatus.Pending, HeartbeatAt = Now.AddMinutes(-10) }, default);
        await Store.CreateRunAsync(Run("fresh", OrgA, Now) with { Status = RunStatus.Running, HeartbeatAt = Now }, default);
        await Store.CreateRunAsync(Run("finished", OrgA, Now) with { Status = RunStatus.Completed, HeartbeatAt = Now.AddMinutes(-10) }, default);
        await EnqueueAsync(OrgA, "queued", "QUEUED");
        await Store.SaveStepAsync(Step("stale-1", "stale", OrgA, RunStatus.Completed), default);
        await Store.SaveStepAsync(Step("stale-2", "stale", OrgA, RunStatus.Running), default);
        await Store.SaveStepAsync(Step("stale-3", "stale", OrgA, RunStatus.Pending), default);

        (await Store.FailAbandonedRunsAsync(Now.AddMinutes(-1), Now, "worker gone", default)).ShouldBe(2);

        foreach (var id in new[] { "stale", "never-beat" })
        {
            var run = (await Store.FindRunAsync(id, OrgA, default)).ShouldNotBeNull();
            run.Status.ShouldBe(RunStatus.Failed);
            run.ErrorClass.ShouldBe("RunAbandoned");
            run.ErrorMessage.ShouldBe("worker gone");
            run.EndTime.ShouldBe(Now);
        }

        (await Store.FindRunAsync("queued", OrgA, default)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Pending);
        (await Store.FindRunAsync("fresh", OrgA, default)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Running);
        (await Store.FindRunAsync("finished", OrgA, default)).ShouldNotBeNull().Status.ShouldBe(RunStatus.Completed);
        var steps = await Store.ListStepsAsync("stale", OrgA, default);
        steps.Select(s => s.Status).ShouldBe([RunStatus.Completed, RunStatus.Failed, RunStatus.Skipped]);
        steps.Select(s => s.ErrorClass ?? "-").ShouldBe(["-", "RunAbandoned", "-"]);
        (await Store.FailAbandonedRunsAsync(Now.AddMinutes(-1), Now, "worker gone", default)).ShouldBe(0);
    }

    [Fact]
    public async Task Credentials_ReplaceKeepsOneActivePerProvider_ValidateAndDeactivateAreScoped()
    {
        var first = Credential("cred-1", OrgA, IntegrationProvider.OpenAi, Now);
        var second = Credential("cred-2", OrgA, IntegrationProvider.OpenAi, Now.AddMinutes(1));
        await Store.ReplaceCredentialAsync(first, default);
        await Store.ReplaceCredentialAsync(Credential("cred-g", OrgA, IntegrationProvider.Gcp, Now), default);
        await Store.ReplaceCredentialAsync(second, default);
        await Store.ReplaceCredentialAsync(Credential("cred-b", OrgB, IntegrationProvider.OpenAi, Now), default);

        var active = (await Store.FindActiveCredentialAsync(OrgA, IntegrationProvider.OpenAi, default)).ShouldNotBeNull();
        active.CredentialId.ShouldBe("cred-2");
        active.Metadata.ShouldBe(second.Metadata);
        active.IsActive.ShouldBeTrue();
        active.CreatedAt.ShouldBe(second.CreatedAt);
        (await Store.ListActiveCredentialsAsync(OrgA, default)).Select(c => c.CredentialId).ShouldBe(["cred-g", "cred-2"]);
        (await Store.FindActiveCredentialAsync(OrgA, IntegrationProvider.Anthropic, default)).ShouldBeNull();

        (await Store.UpdateCredentialValidationAsync(OrgA, "cred-1", "VALID", null, Now.AddMinutes(2), default)).ShouldBeFalse();
        (await Store.UpdateCredentialValidationAsync(OrgB, "cred-2", "VALID", null, Now.AddMinutes(2), default)).ShouldBeFalse();
        (await Store.UpdateCredentialValidationAsync(OrgA, "cred-2", "INVALID", "401 from provider", Now.AddMinutes(2), default)).ShouldBeTrue();
        var validated = (await Store.FindActiveCredentialAsync(OrgA, IntegrationProvider.OpenAi, default)).ShouldNotBeNull();
        validated.ValidationStatus.ShouldBe("INVALID");
        validated.LastError.ShouldBe("401 from provider");
        validated.LastValidatedAt.ShouldBe(Now.AddMinutes(2));

        (await Store.DeactivateCredentialAsync(OrgB, IntegrationProvider.Gcp, Now, default)).ShouldBeFalse();
        (await Store.DeactivateCredentialAsync(OrgA, IntegrationProvider.OpenAi, Now.AddMinutes(3), default)).ShouldBeTrue();
        (await Store.DeactivateCredentialAsync(OrgA, IntegrationProvider.OpenAi, Now.AddMinutes(3), default)).ShouldBeFalse();
        (await Store.FindActiveCredentialAsync(OrgA, IntegrationProvider.OpenAi, default)).ShouldBeNull();
        (await Store.FindActiveCredentialAsync(OrgB, IntegrationProvider.OpenAi, default)).ShouldNotBeNull();
    }

    [Fact]
    public async Task Ciphertexts_PageByRecordIdSkippingErased_AndReplaceIsCompareAndSwap()
    {
        await ArrangeOrgAsync(OrgA);
        await ArrangeOrgAsync(OrgB);
        await Store.ReplaceCredentialAsync(Credential("c-3", OrgA, IntegrationProvider.OpenAi, Now), default);
        await Store.ReplaceCredentialAsync(Credential("c-1", OrgB, IntegrationProvider.OpenAi, Now), default);
        await Store.ReplaceCredentialAsync(Credential("c-2", OrgA, IntegrationProvider.Gcp, Now), default);
        await Store.ReplaceCredentialAsync(Credential("c-4", OrgA, IntegrationProvider.OpenAi, Now), default); // erases c-3

        var first = await Store.ListCiphertextsAsync(CiphertextTable.IntegrationCredentials, null, 2, default);
        first.Select(c => c.RecordId).ShouldBe(["c-1", "c-2"]);
        first[0].ShouldBe(new StoredCiphertext(CiphertextTable.IntegrationCredentials, "c-1", OrgB, "OPENAI", "cipher-c-1"));
        (await Store.ListCiphertextsAsync(CiphertextTable.IntegrationCredentials, "c-2", 2, default)).Select(c => c.RecordId).ShouldBe(["c-4"]);
        var keys = await Store.ListCiphertextsAsync(CiphertextTable.OrgApiKeys, null, 10, default);
        keys.Select(k => k.RecordId).ShouldBe([Key(OrgA).OrgApiKeyId, Key(OrgB).OrgApiKeyId]);
        keys.Select(k => k.Org).ShouldBe([OrgA, OrgB]);
        keys.ShouldAllBe(k => k.Provider == null);

        (await Store.ReplaceCiphertextAsync(CiphertextTable.IntegrationCredentials, "c-1", "stale", "rewrapped", default)).ShouldBeFalse();
        (await Store.ReplaceCiphertextAsync(CiphertextTable.IntegrationCredentials, "c-1", "cipher-c-1", "rewrapped", default)).ShouldBeTrue();
        (await Store.ReplaceCiphertextAsync(CiphertextTable.IntegrationCredentials, "missing", "cipher-c-1", "rewrapped", default)).ShouldBeFalse();
        (await Store.ReplaceCiphertextAsync(CiphertextTable.OrgApiKeys, Key(OrgA).OrgApiKeyId, Key(OrgA).EncryptedKey, "rewrapped-key", default)).ShouldBeTrue();

        (await Store.FindActiveCredentialAsync(OrgB, IntegrationProvider.OpenAi, default)).ShouldNotBeNull().EncryptedCredential.ShouldBe("rewrapped");
        (await Store.ListApiKeysAsync(OrgA, default)).Single().EncryptedKey.ShouldBe("rewrapped-key");
    }

    [Fact]
    public async Task Audit_ListsTheOrgsEntriesNewestFirstUpToTheLimit()
    {
        await Store.RecordAuditAsync(Audit("a-1", OrgA, Now), default);
        await Store.RecordAuditAsync(Audit("a-3", OrgA, Now.AddSeconds(1)), default);
        await Store.RecordAuditAsync(Audit("a-2", OrgA, Now.AddSeconds(1)) with { Details = null, ActorKeyId = null }, default);
        await Store.RecordAuditAsync(Audit("b-1", OrgB, Now), default);
        await Store.RecordAuditAsync(Audit("platform", null, Now), default);
        await using (var transaction = await Store.BeginTransactionAsync(default))
        {
            await transaction.RecordAuditAsync(Audit("a-4", OrgA, Now.AddSeconds(2)), default);
            await transaction.CommitAsync(default);
        }

        var entries = await Store.ListAuditAsync(OrgA, 3, default);
        entries.Select(e => e.AuditId).ShouldBe(["a-4", "a-3", "a-2"]);
        entries[0].OccurredAt.ShouldBe(Now.AddSeconds(2));
        entries[0].OrgSlug.ShouldBe(OrgA);
        Canonical(entries[0].Details).ShouldBe(Canonical(Audit("x", OrgA, Now).Details));
        entries[2].Details.ShouldBeNull();
        (await Store.ListAuditAsync(OrgB, 10, default)).ShouldHaveSingleItem().AuditId.ShouldBe("b-1");
    }

    protected async Task ArrangeOrgAsync(OrgSlug org, bool quota = true)
    {
        await using var transaction = await Store.BeginTransactionAsync(default);
        await transaction.InsertOrganizationAsync(Profile(org), default);
        await transaction.InsertSubscriptionAsync(Subscription(org), default);
        if (quota)
        {
            await transaction.InsertUsageQuotaAsync(Quota(org, Today), default);
        }

        await transaction.InsertApiKeyAsync(Key(org), default);
        await transaction.RecordAuditAsync(Audit("onboard-" + org.Value, org, Now), default);
        await transaction.CommitAsync(default);
    }

    /// <summary>A JSON object's members in key order: jsonb keeps its own key order, which JSON does not promise anyway.</summary>
    protected static string Canonical(IReadOnlyDictionary<string, object?>? members) =>
        members is null ? "null" : string.Join(",", members.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => m.Key + "=" + JsonSerializer.Serialize(m.Value)));

    protected static OrgProfile Profile(OrgSlug org) =>
        new(org, "Company " + org.Value, "admin@" + org.Value + ".example", "ACTIVE", "STARTER", org.Value + "_local", Now.AddTicks(10), Now.AddTicks(20));

    protected static OrgSubscription Subscription(OrgSlug org) =>
        new(org, "STARTER", "ACTIVE", 6, 180, 1, Now.AddDays(14), Now.AddDays(-1), Now.AddTicks(30));

    protected static OrgUsageQuota Quota(OrgSlug org, DateOnly date) =>
        new(org, date, 2, 7, 1, Now.AddHours(-12), Now.AddDays(-13));

    protected static ApiKeyRecord Key(OrgSlug org) =>
        new("key-" + org.Value, org, "hash-" + org.Value, "enc-" + org.Value, "fp_" + org.Value, ["pipelines:run", "org:read"], true, null, Now, null, null);

    protected static AuditEntry Audit(string id, OrgSlug? org, DateTimeOffset at) =>
        new(id, at, "org_key", "key-1", null, "org.onboard", org, "req-" + id, "SUCCESS", new Dictionary<string, object?> { ["plan"] = "STARTER", ["keys"] = 1 });

    protected static PipelineRunRecord Run(string id, OrgSlug? org, DateTimeOffset created) =>
        new(id, org, "openai-usage", "openai/usage_cost", RunTrigger.Api, "key-1", "key-1", "req-" + id, RunStatus.Pending,
            new Dictionary<string, string> { ["date"] = "2030-03-13" }, """{"steps": [{"id": "fetch"}]}""", null, null, null, null, 1, created);

    protected static StepLogRecord Step(string id, string runId, OrgSlug? org, string status) =>
        new(id, runId, org, "fetch", "openai.usage", status, Now, null, null, 1,
            status == RunStatus.Pending ? null : new Dictionary<string, object?> { ["rows"] = 3, ["table"] = "usage" }, null, null);

    protected static DqResultRecord Dq(string id, string runId, OrgSlug? org, DateTimeOffset at) =>
        new(id, runId, runId + "-1", org, "usage", "not_null", "ERROR", "FAILED", "1", "0", """[{"cost": -1.5}]""", at);

    protected static IntegrationCredential Credential(string id, OrgSlug org, IntegrationProvider provider, DateTimeOffset at) =>
        new(id, org, provider, provider.RouteName + " key", "cipher-" + id, "v1", "PENDING", null, null,
            new Dictionary<string, string> { ["fingerprint"] = "fp-" + id }, true, at, at);
}
