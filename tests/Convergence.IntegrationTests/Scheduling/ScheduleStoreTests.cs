using Convergence.Core.Organizations;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>The SQLite schedule store, through the app's services.</summary>
public sealed class SqliteScheduleStoreTests : ScheduleStoreContract, IDisposable
{
    private readonly ConvergenceApiFactory _factory = new();

    protected override IScheduleStore Store => _factory.Services.GetRequiredService<IScheduleStore>();

    public override async Task InitializeAsync() => await _factory.BootstrapAsync();

    public void Dispose() => _factory.Dispose();
}

/// <summary>The PostgreSQL schedule store, on a fresh database of the test server.</summary>
public sealed class PostgresScheduleStoreTests : ScheduleStoreContract
{
    private Convergence.Storage.Postgres.PostgresControlPlaneSource? _source;

    protected override IScheduleStore Store => new Convergence.Storage.Postgres.PostgresScheduleStore(_source!);

    public override async Task InitializeAsync() => _source = await PostgresTestDatabase.CreateControlPlaneAsync("sched");

    public override async Task DisposeAsync() => await _source!.DataSource.DisposeAsync();
}

/// <summary>
/// What every schedule store must do: org scoping of every member but ListDueAsync, and what the trigger reads as due.
/// Timestamps are compared at millisecond precision (PostgreSQL keeps microseconds, SQLite 100 ns).
/// </summary>
public abstract class ScheduleStoreContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2030, 3, 14, 12, 0, 0, TimeSpan.Zero);
    private static readonly OrgSlug OrgA = OrgSlug.From("store_org_a");
    private static readonly OrgSlug OrgB = OrgSlug.From("store_org_b");

    protected abstract IScheduleStore Store { get; }

    public abstract Task InitializeAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task ListDue_AcrossOrgs_ReturnsActiveDueByNextRunThenIdUpToTheLimit()
    {
        await Store.CreateAsync(Config("c3", OrgA, Now.AddMinutes(-5)), default);
        await Store.CreateAsync(Config("c2", OrgB, Now.AddMinutes(-5)), default);
        await Store.CreateAsync(Config("c1", OrgB, Now.AddHours(-1)), default);
        await Store.CreateAsync(Config("c4", OrgA, Now), default);
        await Store.CreateAsync(Config("later", OrgA, Now.AddMilliseconds(1)), default);
        await Store.CreateAsync(Config("inactive", OrgA, Now.AddHours(-2)) with { IsActive = false }, default);
        await Store.CreateAsync(Config("never", OrgB, null), default);

        (await Store.ListDueAsync(Now, 10, default)).Select(c => c.ConfigId).ShouldBe(["c1", "c2", "c3", "c4"]);
        (await Store.ListDueAsync(Now, 2, default)).Select(c => c.ConfigId).ShouldBe(["c1", "c2"]);
    }

    [Fact]
    public async Task Members_ScopedByOrg_DoNotSeeOrChangeAnotherOrgsSchedule()
    {
        var config = Config("scoped", OrgA, Now);
        await Store.CreateAsync(config, default);

        (await Store.FindAsync(OrgB, "scoped", default)).ShouldBeNull();
        (await Store.UpdateAsync(config with { OrgSlug = OrgB, IsActive = false }, default)).ShouldBeFalse();
        (await Store.DeleteAsync(OrgB, "scoped", default)).ShouldBeFalse();
        (await Store.ListAsync(OrgB, default)).ShouldBeEmpty();
        (await Store.CountAsync(OrgB, default)).ShouldBe(0);

        var stored = (await Store.FindAsync(OrgA, "scoped", default)).ShouldNotBeNull();
        stored.IsActive.ShouldBeTrue();
        stored.NextRunTime.ShouldBe(Now);
        stored.Parameters.ShouldBe(config.Parameters);
        (await Store.CountAsync(OrgA, default)).ShouldBe(1);
    }

    [Fact]
    public async Task Create_SameId_IsADuplicateRow()
    {
        await Store.CreateAsync(Config("dup", OrgA, Now), default);

        await Should.ThrowAsync<DuplicateRowException>(() => Store.CreateAsync(Config("dup", OrgB, Now), default));
    }

    [Fact]
    public async Task Update_ReplacesFieldsButKeepsCreatedAt()
    {
        var config = Config("upd", OrgA, Now);
        await Store.CreateAsync(config, default);
        var changed = config with
        {
            Pipeline = "gcp/billing",
            CronSchedule = "0 1 * * *",
            Timezone = "Asia/Tokyo",
            Parameters = new Dictionary<string, string> { ["source_uri"] = "gs://b/x" },
            NextRunTime = Now.AddDays(1),
            LastRunTime = Now,
            CreatedAt = Now.AddYears(-1),
            UpdatedAt = Now.AddMinutes(1),
        };

        (await Store.UpdateAsync(changed, default)).ShouldBeTrue();

        (await Store.FindAsync(OrgA, "upd", default)).ShouldBe(changed with { CreatedAt = config.CreatedAt }, new ScheduleComparer());
    }

    private static ScheduleConfig Config(string id, OrgSlug org, DateTimeOffset? next) =>
        new(id, org, "openai/usage_cost", "30 2 * * *", "Europe/Berlin", new Dictionary<string, string> { ["k"] = "v" }, true, next, null, Now.AddDays(-1), Now.AddDays(-1));

    /// <summary>Records compare their dictionaries by reference; this compares them by content.</summary>
    private sealed class ScheduleComparer : IEqualityComparer<ScheduleConfig?>
    {
        public bool Equals(ScheduleConfig? x, ScheduleConfig? y) =>
            x is not null && y is not null
            && x with { Parameters = y.Parameters } == y
            && x.Parameters.OrderBy(p => p.Key).SequenceEqual(y.Parameters.OrderBy(p => p.Key));

        public int GetHashCode(ScheduleConfig? obj) => obj?.ConfigId.GetHashCode(StringComparison.Ordinal) ?? 0;
    }
}
