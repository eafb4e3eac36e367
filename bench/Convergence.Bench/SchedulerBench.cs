using System.Diagnostics;
using System.Globalization;
using Convergence.Api.Configuration;
using Convergence.Api.Extensions;
using Convergence.Api.Pipelines;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Convergence.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

/// <summary>
/// Scheduler and run queue on SQLite (issue #6). <c>trigger orgs schedules</c>: one <see cref="ScheduleTrigger"/> pass
/// over orgs × schedules due schedules (goal: 10,000 × 3 in at most 2 s), then a second pass that finds nothing due.
/// <c>queue runs workers</c>: admits no-op runs spread over 100 SCALE orgs and drains them with the real worker pool,
/// then measures bare claim + complete (the queue's own ceiling). Usage:
///   dotnet run -c Release --project bench/Convergence.Bench -- trigger [orgs=10000] [schedules=3] [batch=ScheduleTrigger.BatchSize] [rounds=2] [sqlite|postgres]
///   dotnet run -c Release --project bench/Convergence.Bench -- queue [runs=2000] [workers=4] [instances=1] [sqlite|postgres] [rounds=2]
/// With postgres (a fresh database on the server BENCH_POSTGRES names, default the loopback test cluster of
/// tools/pg/test-cluster.sh), several instances share the queue, each with workers/instances workers.
/// </summary>
internal static partial class SchedulerBench
{
    /// <summary>The bench's one-step no-op pipeline (written by Program.CopyConfigs).</summary>
    public const string NoopPipeline = "bench/noop1";

    private const int QueueOrgs = 100;

    public static async Task TriggerAsync(string[] args, Func<string, string> copyConfigs)
    {
        var orgCount = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 10_000;
        var perOrg = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        var batchSize = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : ScheduleTrigger.BatchSize;
        var rounds = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2;
        var store = args.Length > 4 ? args[4] : "sqlite";
        if (store is not ("sqlite" or "postgres"))
        {
            throw new ArgumentException("trigger [orgs] [schedules] [batch] [rounds] [sqlite|postgres]");
        }

        for (var round = 1; round <= rounds; round++)
        {
            // Round 1 runs in a fresh process, its trigger code not yet compiled (the JIT's tiers compile and recompile
            // it while the trigger runs); later rounds start a new app on a new data folder in the same process, as a
            // service that has triggered before: the same work, warm code.
            Console.WriteLine(round == 1 ? "round 1: cold process (first trigger since start)" : $"round {round}: warm process (new app and data folder, code compiled by earlier rounds)");
            await TriggerRoundAsync(orgCount, perOrg, batchSize, copyConfigs, store == "postgres" ? FreshPostgresDatabase() : null);
        }
    }

    private static async Task TriggerRoundAsync(int orgCount, int perOrg, int batchSize, Func<string, string> copyConfigs, string? postgres)
    {
        await using var bench = await BenchApp.StartAsync(copyConfigs, workers: 4, postgres);
        var setup = Stopwatch.StartNew();
        var orgs = await bench.CreateOrgsAsync(orgCount);
        var now = bench.Time.GetUtcNow();
        await bench.CreateDueSchedulesAsync(orgs, perOrg, now);
        setup.Stop();
        var expected = orgCount * perOrg;
        Console.WriteLine($"setup: {orgCount} SCALE orgs, {expected} due schedules in {setup.Elapsed.TotalSeconds:0.0} s (not measured)");

        // Breakdown: the trigger's CPU work per schedule without the store (cron parse once per expression, next
        // occurrence, validation of the run request; the run record itself is prepared at claim), on one thread.
        var executor = bench.Services.GetRequiredService<PipelineExecutor>();
        var due = await bench.Services.GetRequiredService<IScheduleStore>().ListDueAsync(now, expected, CancellationToken.None);
        var validate = Stopwatch.StartNew();
        var crons = new Dictionary<string, CronSchedule>(StringComparer.Ordinal);
        foreach (var config in due)
        {
            if (!crons.TryGetValue(config.CronSchedule, out var schedule))
            {
                CronSchedule.TryCreate(config.CronSchedule, config.Timezone, out schedule, out _);
                crons[config.CronSchedule] = schedule!;
            }

            var parameters = new Dictionary<string, string>(config.Parameters, StringComparer.Ordinal) { [RunParameters.DateKey] = "2026-01-01" };
            executor.Validate(new PipelineRunRequest(config.Pipeline, config.OrgSlug, parameters, new Actor(Actor.RootType, null, config.OrgSlug, "scheduler", null), RunTrigger.Scheduler));
            _ = schedule!.Next(now);
        }

        validate.Stop();
        Console.WriteLine($"breakdown:  cron + Validate of {due.Count} ticks alone, one thread, no store: {validate.Elapsed.TotalSeconds:0.000} s");

        // The trigger of the app's services, with its two stores timed.
        var schedules = new TimedSchedules(bench.Services.GetRequiredService<IScheduleStore>());
        var ticksStore = new TimedQueue(bench.Services.GetRequiredService<IRunQueueStore>());
        var trigger = new ScheduleTrigger(
            schedules, ticksStore, executor, bench.Time, bench.Settings.RunMaxAttempts, bench.Services.GetRequiredService<ILogger<ScheduleTrigger>>())
        {
            TicksPerBatch = batchSize,
        };
        Console.WriteLine($"trigger:    batches of {batchSize} ticks");
        var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        var first = Stopwatch.StartNew();
        var monotonicStart = Stopwatch.GetTimestamp();
        var result = await trigger.TriggerAsync(CancellationToken.None);
        first.Stop();
        Console.WriteLine($"monotonic:  {monotonicStart / (double)Stopwatch.Frequency:0.000000},{Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency:0.000000} (for perf report --time)");
        cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpu;
        var inTrigger = first.Elapsed - schedules.Elapsed - ticksStore.Elapsed;
        Console.WriteLine(
            $"  of which: ListDueAsync {schedules.Elapsed.TotalSeconds:0.000} s, EnqueueTicksAsync {ticksStore.Elapsed.TotalSeconds:0.000} s, " +
            $"ScheduleTrigger itself (the first batch's cron and validation; later batches' overlap the writes) {inTrigger.TotalSeconds:0.000} s");
        Console.WriteLine($"trigger #1: due {result.Due}, queued {result.Queued}, skipped {result.Skipped}, duplicates {result.Duplicates}, stale {result.Stale}, invalid {result.Invalid}");
        Console.WriteLine($"            {first.Elapsed.TotalSeconds:0.000} s   {result.Due / first.Elapsed.TotalSeconds:0} ticks/s   (goal <= 2 s for 30,000); process CPU {cpu.TotalSeconds:0.000} s (all threads; the same as the time only on an idle machine)");

        // One row written per tick besides the schedule's advance: the QUEUED entry, which is the tick's record (its
        // idempotency key) and carries the run's id; the run row is created by the worker that claims it.
        var counts = await bench.CountAsync(
            "SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE status = 'QUEUED' AND queue_id = pipeline_logging_id AND idempotency_key LIKE 'schedule:%'",
            "SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE \"trigger\" = 'SCHEDULER'",
            "SELECT COUNT(*) FROM org_scheduled_pipeline_runs",
            postgres is null
                ? $"SELECT COUNT(*) FROM org_pipeline_configs WHERE is_active = 1 AND next_run_time <= '{Stamp(now)}'"
                : $"SELECT COUNT(*) FROM org_pipeline_configs WHERE is_active AND next_run_time <= '{Stamp(now)}'::timestamptz",
            "SELECT SUM(pipelines_run_today) FROM org_usage_quotas");
        Console.WriteLine($"verify:     queue entries {counts[0]}, run rows {counts[1]} (created at claim), tick rows {counts[2]}, still due {counts[3]}, runs counted on quotas {counts[4]}");
        if (result.Due != expected || result.Queued != expected || counts[0] != expected || counts[1] != 0 || counts[2] != 0 || counts[3] != 0 || counts[4] != expected)
        {
            throw new InvalidOperationException($"Trigger verification failed: expected {expected} due, queued, QUEUED entries and counted runs, no run or tick rows yet, and nothing still due.");
        }

        // The queued runs are visible as PENDING runs before any claim.
        var sample = result.Outcomes[^1];
        var pending = await bench.Services.GetRequiredService<IControlPlaneStore>().FindRunAsync(sample.QueueId!, sample.Org, CancellationToken.None);
        if (pending is not { Status: RunStatus.Pending, Trigger: RunTrigger.Scheduler })
        {
            throw new InvalidOperationException($"Queued scheduled run {sample.QueueId} is not found as a PENDING run.");
        }

        var second = Stopwatch.StartNew();
        var again = await trigger.TriggerAsync(CancellationToken.None);
        second.Stop();
        Console.WriteLine($"trigger #2: due {again.Due} in {second.Elapsed.TotalMilliseconds:0.0} ms (nothing due: one indexed query)");
        if (again.Due != 0)
        {
            throw new InvalidOperationException($"The second trigger found {again.Due} due schedule(s); expected none.");
        }
    }

    public static async Task QueueAsync(string[] args, Func<string, string> copyConfigs)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 2000;
        var workers = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 4;
        var instances = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
        var store = args.Length > 3 ? args[3] : "sqlite";
        if (runs / QueueOrgs * 2 > SubscriptionPlan.Scale.DailyLimit)
        {
            throw new ArgumentException($"At most {SubscriptionPlan.Scale.DailyLimit / 2 * QueueOrgs} runs: both phases count on the {QueueOrgs} SCALE orgs' daily limit.");
        }

        if (workers % instances != 0 || store is not ("sqlite" or "postgres") || (store == "sqlite" && instances != 1))
        {
            throw new ArgumentException("queue [runs] [workers] [instances] [sqlite|postgres]: workers must split evenly over the instances; several instances need postgres.");
        }

        var rounds = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 2;
        for (var round = 1; round <= rounds; round++)
        {
            // As for the trigger: round 1 in a fresh process, later rounds on new apps and a new database (or data
            // folder) in the same process, with the executor, stores and dispatcher already compiled.
            Console.WriteLine(round == 1 ? "round 1: cold process" : $"round {round}: warm process (new apps and store, code compiled by earlier rounds)");

            // Several instances share one PostgreSQL database (a fresh one, BENCH_POSTGRES names the server), each with
            // its own worker pool, as separate service processes would.
            var shared = store == "postgres" ? FreshPostgresDatabase() : null;
            var apps = new List<BenchApp>();
            for (var i = 0; i < instances; i++)
            {
                apps.Add(await BenchApp.StartAsync(copyConfigs, workers / instances, shared));
            }

            try
            {
                await QueueAsync(apps, apps[0], runs, workers, store);
            }
            finally
            {
                foreach (var app in apps)
                {
                    await app.DisposeAsync();
                }
            }
        }
    }

    private static async Task QueueAsync(IReadOnlyList<BenchApp> apps, BenchApp bench, int runs, int workers, string store)
    {
        var orgs = await bench.CreateOrgsAsync(QueueOrgs);
        var submit = bench.Services.GetRequiredService<PipelineRunService>();
        var queue = bench.Services.GetRequiredService<IRunQueueStore>();
        var actor = Actor.System("bench");

        // Phase 1: the real worker pools (dispatcher loop, leases, executor, completion) drain the queue.
        var admit = Stopwatch.StartNew();
        for (var i = 0; i < runs; i++)
        {
            await submit.SubmitAsync(orgs[i % orgs.Count], NoopPipeline, new Dictionary<string, string>(), actor, null, CancellationToken.None);
        }

        admit.Stop();
        Console.WriteLine($"[{store}, {apps.Count} instance(s)] admitted {runs} no-op runs over {orgs.Count} SCALE orgs through PipelineRunService.SubmitAsync: {runs / admit.Elapsed.TotalSeconds:0} admissions/s");

        var hosted = apps.SelectMany(a => a.Services.GetServices<IHostedService>()).ToList();
        var drain = Stopwatch.StartNew();
        foreach (var service in hosted)
        {
            await service.StartAsync(CancellationToken.None);
        }

        while (await bench.CountAsync($"SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE status IN ('QUEUED', 'CLAIMED', 'RUNNING')") is [> 0])
        {
            await Task.Delay(20);
        }

        drain.Stop();
        foreach (var service in hosted)
        {
            await service.StopAsync(CancellationToken.None);
        }

        var done = await bench.CountAsync(
            "SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE status = 'COMPLETED'",
            $"SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE status = 'COMPLETED' AND pipeline_path = '{NoopPipeline}'");
        Console.WriteLine($"worker pools, {workers} workers over {apps.Count} instance(s): {runs} runs in {drain.Elapsed.TotalSeconds:0.00} s   {runs / drain.Elapsed.TotalSeconds:0} runs/s   (entries COMPLETED {done[0]}, run rows COMPLETED {done[1]})");
        if (done[0] != runs || done[1] != runs)
        {
            throw new InvalidOperationException($"Expected {runs} COMPLETED entries and runs.");
        }

        // Phase 2: bare ClaimAsync + CompleteAsync by as many loops, executing nothing.
        for (var i = 0; i < runs; i++)
        {
            var run = bench.Services.GetRequiredService<PipelineExecutor>().Prepare(new PipelineRunRequest(NoopPipeline, orgs[i % orgs.Count], new Dictionary<string, string>(), actor, RunTrigger.Api));
            if (await queue.AdmitAsync(new RunAdmission(run, QueuePriority.Api, 3, null, CountsAgainstQuota: true, bench.Time.GetUtcNow()), CancellationToken.None) is not AdmissionOutcome.Admitted)
            {
                throw new InvalidOperationException("A bare-claim run was not admitted.");
            }
        }

        var claimed = 0;
        var claims = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var queue = apps[w % apps.Count].Services.GetRequiredService<IRunQueueStore>();
            while (await queue.ClaimAsync($"bench-{w}", bench.Time.GetUtcNow(), TimeSpan.FromMinutes(5), CancellationToken.None) is { } lease)
            {
                if (!await queue.CompleteAsync(lease, QueueStatus.Completed, null, bench.Time.GetUtcNow(), CancellationToken.None))
                {
                    throw new InvalidOperationException($"Lease of {lease.QueueId} lost.");
                }

                Interlocked.Increment(ref claimed);
            }
        })));
        claims.Stop();
        Console.WriteLine($"bare ClaimAsync + CompleteAsync, {workers} loops: {claimed} in {claims.Elapsed.TotalSeconds:0.00} s   {claimed / claims.Elapsed.TotalSeconds:0} claims/s");
        if (claimed != runs)
        {
            throw new InvalidOperationException($"Claimed {claimed} of {runs} entries.");
        }
    }

    /// <summary>The schedule store, timing <see cref="IScheduleStore.ListDueAsync"/>.</summary>
    private sealed class TimedSchedules(IScheduleStore inner) : IScheduleStore
    {
        private readonly Stopwatch _watch = new();

        public TimeSpan Elapsed => _watch.Elapsed;

        public Task CreateAsync(ScheduleConfig config, CancellationToken cancellationToken) => inner.CreateAsync(config, cancellationToken);

        public Task<ScheduleConfig?> FindAsync(OrgSlug org, string configId, CancellationToken cancellationToken) => inner.FindAsync(org, configId, cancellationToken);

        public Task<IReadOnlyList<ScheduleConfig>> ListAsync(OrgSlug org, CancellationToken cancellationToken) => inner.ListAsync(org, cancellationToken);

        public Task<bool> UpdateAsync(ScheduleConfig config, CancellationToken cancellationToken) => inner.UpdateAsync(config, cancellationToken);

        public Task<bool> DeleteAsync(OrgSlug org, string configId, CancellationToken cancellationToken) => inner.DeleteAsync(org, configId, cancellationToken);

        public Task<int> CountAsync(OrgSlug org, CancellationToken cancellationToken) => inner.CountAsync(org, cancellationToken);

        public async Task<IReadOnlyList<ScheduleConfig>> ListDueAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken)
        {
            _watch.Start();
            try
            {
                return await inner.ListDueAsync(now, limit, cancellationToken);
            }
            finally
            {
                _watch.Stop();
            }
        }
    }

    /// <summary>The run queue store, timing <see cref="IRunQueueStore.EnqueueTicksAsync(TickBatch, CancellationToken)"/>.</summary>
    private sealed class TimedQueue(IRunQueueStore inner) : IRunQueueStore
    {
        private readonly Stopwatch _watch = new();
        private readonly Lock _gate = new();
        private int _active;

        public TimeSpan Elapsed => _watch.Elapsed;

        public Task<AdmissionOutcome> AdmitAsync(RunAdmission admission, CancellationToken cancellationToken) => inner.AdmitAsync(admission, cancellationToken);

        public Task<QueueLease?> ClaimAsync(string owner, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken) => inner.ClaimAsync(owner, now, lease, cancellationToken);

        public Task<bool> StartAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken) =>
            inner.StartAsync(lease, run, steps, now, cancellationToken);

        public Task<IReadOnlyList<QueueLease>> RenewAsync(IReadOnlyCollection<QueueLease> leases, DateTimeOffset expiresAt, DateTimeOffset now, CancellationToken cancellationToken) =>
            inner.RenewAsync(leases, expiresAt, now, cancellationToken);

        public Task<bool> CompleteAsync(QueueLease lease, string status, string? error, DateTimeOffset now, CancellationToken cancellationToken) =>
            inner.CompleteAsync(lease, status, error, now, cancellationToken);

        public Task<bool> FinishAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken) =>
            inner.FinishAsync(lease, run, steps, now, cancellationToken);

        public Task<RescueOutcome> RescueExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken) => inner.RescueExpiredAsync(now, cancellationToken);

        public Task<bool> CancelQueuedAsync(string pipelineLoggingId, DateTimeOffset now, CancellationToken cancellationToken) => inner.CancelQueuedAsync(pipelineLoggingId, now, cancellationToken);

        /// <summary>The store's own preparation (its rows), timed as the trigger's work: it runs on the trigger's preparing thread.</summary>
        public TickBatch PrepareTicks(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now) => inner.PrepareTicks(ticks, now);

        public async Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(TickBatch batch, CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                if (_active++ == 0)
                {
                    _watch.Start();
                }
            }

            try
            {
                return await inner.EnqueueTicksAsync(batch, cancellationToken);
            }
            finally
            {
                lock (_gate)
                {
                    if (--_active == 0)
                    {
                        _watch.Stop();
                    }
                }
            }
        }

        public Task<QueueSnapshot> GetSnapshotAsync(DateTimeOffset now, CancellationToken cancellationToken) => inner.GetSnapshotAsync(now, cancellationToken);

        public Task<QuotaResetOutcome> ResetDailyQuotasAsync(DateTimeOffset now, DateOnly purgeBefore, CancellationToken cancellationToken) =>
            inner.ResetDailyQuotasAsync(now, purgeBefore, cancellationToken);
    }

    /// <summary>A new empty database on the server BENCH_POSTGRES names (default: tools/pg/test-cluster.sh's).</summary>
    private static string FreshPostgresDatabase()
    {
        var server = Environment.GetEnvironmentVariable("BENCH_POSTGRES") ?? "Host=127.0.0.1;Port=55432;Username=postgres;Database=postgres";
        var name = $"bench_{Guid.NewGuid():N}"[..20];
        using (var admin = new Npgsql.NpgsqlConnection(server))
        {
            admin.Open();
            using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            create.ExecuteNonQuery();
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(server) { Database = name, MaxPoolSize = 50 }.ConnectionString;
    }

    /// <summary>The SqliteSchema timestamp text (<c>yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'</c>, UTC) that the stores write.</summary>
    private static string Stamp(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>The app's services on a fresh temporary data folder, bootstrapped through the real setup pipeline.</summary>
    private sealed class BenchApp : IAsyncDisposable
    {
        private readonly DirectoryInfo _work;

        private BenchApp(DirectoryInfo work, ServiceProvider services, ConvergenceSettings settings)
        {
            _work = work;
            Services = services;
            Settings = settings;
        }

        public ServiceProvider Services { get; }

        public ConvergenceSettings Settings { get; }

        public TimeProvider Time => Services.GetRequiredService<TimeProvider>();

        /// <param name="postgres">A PostgreSQL connection string for the control plane, else the embedded SQLite store.</param>
        public static async Task<BenchApp> StartAsync(Func<string, string> copyConfigs, int workers, string? postgres = null)
        {
            var work = Directory.CreateTempSubdirectory("convergence-bench-");
            var settings = ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["CONVERGENCE_DATA_DIR"] = Path.Combine(work.FullName, "data"),
                ["CONVERGENCE_CONFIGS_DIR"] = copyConfigs(work.FullName),
                ["CA_ROOT_API_KEY"] = new string('b', 40),
                ["CONVERGENCE_SCHEDULER"] = "external",
                ["CONVERGENCE_PIPELINE_WORKERS"] = workers.ToString(CultureInfo.InvariantCulture),
                ["CONVERGENCE_STORE"] = postgres is null ? "sqlite" : "postgres",
                ["CONVERGENCE_STORE_CONNECTION"] = postgres,
            }).Build());
            var services = new ServiceCollection().AddLogging(b => b.SetMinimumLevel(LogLevel.Warning)).AddConvergenceCore(settings).BuildServiceProvider();
            var app = new BenchApp(work, services, settings);
            await services.GetRequiredService<PipelineExecutor>().RunAsync(
                new PipelineRunRequest("setup/bootstrap/pipeline", null, new Dictionary<string, string>(), Actor.System("bench"), RunTrigger.Admin), CancellationToken.None);
            return app;
        }

        /// <summary>
        /// Orgs as onboarding leaves them in the control plane (ACTIVE profile, ACTIVE SCALE subscription, today's quota
        /// row), written through the store's own transaction in one commit. Their warehouse datasets are not created.
        /// </summary>
        public async Task<IReadOnlyList<OrgSlug>> CreateOrgsAsync(int count)
        {
            var store = Services.GetRequiredService<IControlPlaneStore>();
            var now = Time.GetUtcNow();
            var orgs = Enumerable.Range(0, count).Select(i => OrgSlug.From($"bench_org_{i:D5}")).ToList();
            await using var transaction = await store.BeginTransactionAsync(CancellationToken.None);
            foreach (var org in orgs)
            {
                var dataset = DatasetRef.ForOrg(org, Settings.Environment);
                await transaction.InsertOrganizationAsync(new OrgProfile(org, "Bench", "bench@example.com", OrgStatus.Active, SubscriptionPlan.Scale.Name, dataset.Name, now, now), CancellationToken.None);
                await transaction.InsertSubscriptionAsync(OrgSubscription.ForPlan(org, SubscriptionPlan.Scale, now), CancellationToken.None);
                await transaction.InsertUsageQuotaAsync(OrgUsageQuota.Fresh(org, now), CancellationToken.None);
            }

            await transaction.CommitAsync(CancellationToken.None);
            return orgs;
        }

        /// <summary>
        /// <paramref name="perOrg"/> active hourly schedules of the no-op pipeline per org, at distinct minutes, each with
        /// next_run_time at its latest occurrence before now (due, nothing missed); rows in <c>SqliteScheduleStore</c>'s format.
        /// </summary>
        public async Task CreateDueSchedulesAsync(IReadOnlyList<OrgSlug> orgs, int perOrg, DateTimeOffset now)
        {
            if (Settings.StoreConnection is { } postgres)
            {
                await CreateDueSchedulesOnPostgresAsync(postgres, orgs, perOrg, now);
                return;
            }

            var files = Services.GetRequiredService<SqliteDatasetFiles>();
            await using var connection = new SqliteConnection(files.ConnectionString(DatasetRef.Central));
            await connection.OpenAsync();
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync();
            await using var insert = connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = """
                INSERT INTO org_pipeline_configs (config_id, org_slug, pipeline, cron_schedule, timezone, parameters, is_active, next_run_time, last_run_time, created_at, updated_at)
                VALUES ($id, $org, $pipeline, $cron, 'Etc/UTC', '{}', 1, $next, NULL, $created, $created)
                """;
            var id = insert.Parameters.Add("$id", SqliteType.Text);
            var org = insert.Parameters.Add("$org", SqliteType.Text);
            insert.Parameters.AddWithValue("$pipeline", NoopPipeline);
            var cron = insert.Parameters.Add("$cron", SqliteType.Text);
            var next = insert.Parameters.Add("$next", SqliteType.Text);
            insert.Parameters.AddWithValue("$created", Stamp(now.AddDays(-1)));
            var crons = DueCrons(perOrg, now).Select(c => (expression: c.Expression, due: Stamp(c.Due))).ToList();
            foreach (var slug in orgs)
            {
                foreach (var (expression, due) in crons)
                {
                    id.Value = Guid.CreateVersion7(now).ToString();
                    org.Value = slug.Value;
                    cron.Value = expression;
                    next.Value = due;
                    await insert.ExecuteNonQueryAsync();
                }
            }

            await transaction.CommitAsync();
        }

        /// <summary>The same schedules in the PostgreSQL control plane, one statement.</summary>
        private static async Task CreateDueSchedulesOnPostgresAsync(string connectionString, IReadOnlyList<OrgSlug> orgs, int perOrg, DateTimeOffset now)
        {
            var crons = DueCrons(perOrg, now);
            var rows = orgs.SelectMany(o => crons.Select(c => (Org: o.Value, c.Expression, c.Due))).ToList();
            await using var connection = new Npgsql.NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var insert = new Npgsql.NpgsqlCommand(
                """
                INSERT INTO organizations.org_pipeline_configs (config_id, org_slug, pipeline, cron_schedule, timezone, parameters, is_active, next_run_time, last_run_time, created_at, updated_at)
                SELECT r.id, r.org, @pipeline, r.cron, 'Etc/UTC', '{}'::jsonb, true, r.due, NULL, @created, @created
                FROM unnest(@ids, @orgs, @crons, @dues) AS r(id, org, cron, due)
                """,
                connection);
            insert.Parameters.AddWithValue("pipeline", NoopPipeline);
            insert.Parameters.AddWithValue("created", now.AddDays(-1).UtcDateTime);
            insert.Parameters.AddWithValue("ids", rows.Select(_ => Guid.CreateVersion7(now).ToString()).ToArray());
            insert.Parameters.AddWithValue("orgs", rows.Select(r => r.Org).ToArray());
            insert.Parameters.AddWithValue("crons", rows.Select(r => r.Expression).ToArray());
            insert.Parameters.AddWithValue("dues", rows.Select(r => r.Due.UtcDateTime).ToArray());
            await insert.ExecuteNonQueryAsync();
        }

        /// <summary>perOrg hourly crons at distinct minutes, each with its latest occurrence before now (due now).</summary>
        private static List<(string Expression, DateTimeOffset Due)> DueCrons(int perOrg, DateTimeOffset now) =>
            [.. Enumerable.Range(0, perOrg).Select(s =>
            {
                var expression = $"{s * 60 / perOrg % 60} * * * *";
                if (!CronSchedule.TryCreate(expression, "Etc/UTC", out var schedule, out _) || schedule is null)
                {
                    throw new InvalidOperationException($"Bad bench cron {expression}.");
                }

                return (expression, schedule.Next(now.AddHours(-1)));
            })];

        public async Task<long[]> CountAsync(params string[] queries)
        {
            await using System.Data.Common.DbConnection connection = Settings.StoreConnection is { } postgres
                ? new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(postgres) { SearchPath = DatasetRef.CentralName }.ConnectionString)
                : new SqliteConnection(Services.GetRequiredService<SqliteDatasetFiles>().ConnectionString(DatasetRef.Central));
            await connection.OpenAsync();
            var counts = new long[queries.Length];
            for (var i = 0; i < queries.Length; i++)
            {
                await using var command = connection.CreateCommand();
                command.CommandText = queries[i];
                counts[i] = Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
            }

            return counts;
        }

        public async ValueTask DisposeAsync()
        {
            await Services.DisposeAsync();
            SqliteConnection.ClearAllPools();
            _work.Delete(recursive: true);
        }
    }
}
