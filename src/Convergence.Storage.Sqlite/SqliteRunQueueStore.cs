using System.Globalization;
using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>
/// The run queue on the embedded control plane. Every method is one <c>BEGIN IMMEDIATE</c> transaction, so SQLite's
/// single writer serializes admissions and claims across threads and processes sharing the file.
/// </summary>
internal sealed class SqliteRunQueueStore(SqliteDatasetFiles files) : IRunQueueStore
{
    private const string Active = "('CLAIMED', 'RUNNING')";

    public async Task<AdmissionOutcome> AdmitAsync(RunAdmission admission, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        using var statements = new Statements(connection, transaction);
        var outcome = await AdmitAsync(statements, admission, QueueIdempotencyKey(admission.Run), cancellationToken);
        if (outcome is AdmissionOutcome.Admitted)
        {
            await transaction.CommitAsync(cancellationToken);
        }

        return outcome;
    }

    public async Task<QueueLease?> ClaimAsync(string owner, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var at = SqliteSchema.Timestamp(now);
        var candidate = await connection.QuerySingleOrDefaultAsync<ClaimRow>(new CommandDefinition(
            $"""
            SELECT q.queue_id, q.org_slug, q.pipeline_logging_id, q.attempts FROM org_pipeline_execution_queue q
            LEFT JOIN org_subscriptions s ON s.org_slug = q.org_slug
            WHERE q.status = 'QUEUED'
              AND (SELECT COUNT(*) FROM org_pipeline_execution_queue r
                   WHERE r.org_slug = q.org_slug AND r.status IN {Active} AND r.lease_expires_at > @at) < COALESCE(s.concurrent_limit, 1)
            ORDER BY q.priority, q.created_at, q.queue_id
            LIMIT 1
            """,
            new { at },
            transaction,
            cancellationToken: cancellationToken));
        if (candidate is null)
        {
            return null;
        }

        var token = Guid.NewGuid().ToString("N");
        var expires = now + lease;
        var attempt = (int)candidate.attempts + 1;
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_pipeline_execution_queue SET status = 'CLAIMED', lease_owner = @owner, lease_token = @token, lease_expires_at = @expires,
                attempts = @attempt, updated_at = @at
            WHERE queue_id = @id AND status = 'QUEUED'
            """,
            new { owner, token, expires = SqliteSchema.Timestamp(expires), attempt, at, id = candidate.queue_id },
            transaction,
            cancellationToken: cancellationToken));
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_meta_pipeline_runs SET attempt = @attempt, worker_id = @owner, heartbeat_at = @at WHERE pipeline_logging_id = @run AND status = 'PENDING'",
            new { attempt, owner, at, run = candidate.pipeline_logging_id },
            transaction,
            cancellationToken: cancellationToken));
        await RecountRunningAsync(connection, transaction, candidate.org_slug, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new QueueLease(candidate.queue_id, OrgSlug.From(candidate.org_slug), candidate.pipeline_logging_id, owner, token, attempt, expires);
    }

    public async Task<bool> MarkRunningAsync(QueueLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_pipeline_execution_queue SET status = 'RUNNING', updated_at = @at WHERE queue_id = @QueueId AND lease_token = @Token AND status = 'CLAIMED'",
            new { lease.QueueId, lease.Token, at = SqliteSchema.Timestamp(now) },
            cancellationToken: cancellationToken)) == 1;
    }

    public async Task<IReadOnlyList<QueueLease>> RenewAsync(IReadOnlyCollection<QueueLease> leases, DateTimeOffset expiresAt, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (leases.Count == 0)
        {
            return [];
        }

        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var lost = new List<QueueLease>();
        foreach (var lease in leases)
        {
            // An expired lease nobody took over is still this worker's: renewing it is harmless and keeps the run.
            var renewed = await connection.ExecuteAsync(new CommandDefinition(
                $"""
                UPDATE org_pipeline_execution_queue SET lease_expires_at = @expires, updated_at = @at
                WHERE queue_id = @QueueId AND lease_token = @Token AND status IN {Active}
                """,
                new { lease.QueueId, lease.Token, expires = SqliteSchema.Timestamp(expiresAt), at = SqliteSchema.Timestamp(now) },
                transaction,
                cancellationToken: cancellationToken));
            if (renewed == 0)
            {
                lost.Add(lease);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return lost;
    }

    public async Task<bool> CompleteAsync(QueueLease lease, string status, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var done = await connection.ExecuteAsync(new CommandDefinition(
            $"""
            UPDATE org_pipeline_execution_queue SET status = @status, last_error = @error, lease_expires_at = NULL, updated_at = @at
            WHERE queue_id = @QueueId AND lease_token = @Token AND status IN {Active}
            """,
            new { lease.QueueId, lease.Token, status, error, at = SqliteSchema.Timestamp(now) },
            transaction,
            cancellationToken: cancellationToken)) == 1;
        if (done)
        {
            await RecountRunningAsync(connection, transaction, lease.Org.Value, now, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return done;
    }

    public async Task<RescueOutcome> RescueExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var at = SqliteSchema.Timestamp(now);
        var expired = (await connection.QueryAsync<ExpiredRow>(new CommandDefinition(
            $"""
            SELECT q.queue_id, q.org_slug, q.pipeline_logging_id, q.attempts, q.max_attempts, q.lease_owner, q.lease_expires_at, r.status AS run_status
            FROM org_pipeline_execution_queue q LEFT JOIN org_meta_pipeline_runs r ON r.pipeline_logging_id = q.pipeline_logging_id
            WHERE q.status IN {Active} AND q.lease_expires_at <= @at
            """,
            new { at },
            transaction,
            cancellationToken: cancellationToken))).ToList();
        int requeued = 0, failed = 0;
        foreach (var entry in expired)
        {
            if (entry.run_status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled)
            {
                // The run finished but its worker died before closing the entry: close it, do not run it again.
                await SetEntryAsync(connection, transaction, entry.queue_id, entry.run_status, "Closed by the rescuer: the run had finished.", at, cancellationToken);
                continue;
            }

            var reason = QuotaRules.LeaseExpired(entry.lease_owner, SqliteSchema.ParseTimestampOrNull(entry.lease_expires_at), entry.attempts, entry.max_attempts, lastAttempt: false);
            if (entry.attempts < entry.max_attempts)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    UPDATE org_pipeline_execution_queue SET status = 'QUEUED', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                        last_error = @reason, updated_at = @at
                    WHERE queue_id = @id
                    """,
                    new { id = entry.queue_id, reason, at },
                    transaction,
                    cancellationToken: cancellationToken));
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    UPDATE org_meta_pipeline_runs SET status = 'PENDING', attempt = @next, start_time = NULL, end_time = NULL, duration_ms = NULL,
                        error_class = 'LeaseExpired', error_message = @reason, worker_id = NULL, heartbeat_at = @at
                    WHERE pipeline_logging_id = @run AND status IN ('PENDING', 'RUNNING')
                    """,
                    new { next = entry.attempts + 1, reason, at, run = entry.pipeline_logging_id },
                    transaction,
                    cancellationToken: cancellationToken));
                await CloseStepsAsync(connection, transaction, entry.pipeline_logging_id, reason, at, cancellationToken);
                requeued++;
            }
            else
            {
                var final = QuotaRules.LeaseExpired(entry.lease_owner, SqliteSchema.ParseTimestampOrNull(entry.lease_expires_at), entry.attempts, entry.max_attempts, lastAttempt: true);
                await SetEntryAsync(connection, transaction, entry.queue_id, QueueStatus.Failed, final, at, cancellationToken);
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    UPDATE org_meta_pipeline_runs SET status = 'FAILED', end_time = @at, error_class = 'RunAbandoned', error_message = @final
                    WHERE pipeline_logging_id = @run AND status IN ('PENDING', 'RUNNING')
                    """,
                    new { final, at, run = entry.pipeline_logging_id },
                    transaction,
                    cancellationToken: cancellationToken));
                await CloseStepsAsync(connection, transaction, entry.pipeline_logging_id, final, at, cancellationToken);
                failed++;
            }
        }

        foreach (var org in expired.Select(e => e.org_slug).Distinct(StringComparer.Ordinal))
        {
            await RecountRunningAsync(connection, transaction, org, now, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return new RescueOutcome(requeued, failed);
    }

    public async Task<bool> CancelQueuedAsync(string pipelineLoggingId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var at = SqliteSchema.Timestamp(now);
        var cancelled = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_pipeline_execution_queue SET status = 'CANCELLED', last_error = 'Cancelled before it started.', updated_at = @at WHERE pipeline_logging_id = @pipelineLoggingId AND status = 'QUEUED'",
            new { pipelineLoggingId, at },
            transaction,
            cancellationToken: cancellationToken)) == 1;
        if (cancelled)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_pipeline_runs SET status = 'CANCELLED', end_time = @at, error_class = 'Cancelled', error_message = 'Cancelled before it started.'
                WHERE pipeline_logging_id = @pipelineLoggingId AND status = 'PENDING'
                """,
                new { pipelineLoggingId, at },
                transaction,
                cancellationToken: cancellationToken));
        }

        await transaction.CommitAsync(cancellationToken);
        return cancelled;
    }

    public async Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var outcomes = new List<TickOutcome>(ticks.Count);
        if (ticks.Count == 0)
        {
            return outcomes;
        }

        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        using var statements = new Statements(connection, transaction);
        var at = SqliteSchema.Timestamp(now);
        var counters = new Dictionary<string, OrgCounters>(StringComparer.Ordinal);
        foreach (var tick in ticks)
        {
            TickOutcome Outcome(string status, string? queueId = null, string? reason = null) =>
                new(tick.ConfigId, tick.Org, tick.Pipeline, tick.ScheduledFor, status, queueId, reason);

            var scheduledFor = SqliteSchema.Timestamp(tick.ScheduledFor);
            var advanced = await statements.ExecuteAsync(
                """
                UPDATE org_pipeline_configs SET next_run_time = @next, last_run_time = @scheduledFor, updated_at = @at
                WHERE config_id = @ConfigId AND org_slug = @org AND is_active = 1 AND next_run_time = @expected
                """,
                cancellationToken,
                ("ConfigId", tick.ConfigId), ("org", tick.Org.Value), ("next", SqliteSchema.Timestamp(tick.NextRunTime)), ("scheduledFor", scheduledFor),
                ("at", at), ("expected", SqliteSchema.Timestamp(tick.ExpectedNextRunTime)));
            if (advanced == 0)
            {
                outcomes.Add(Outcome(TickStatus.Stale, reason: "The schedule was changed or advanced by another trigger."));
                continue;
            }

            // Recorded as QUEUED with its entry's id up front; the rare skip rewrites the row. One statement per write, no
            // savepoint: the transaction holds SQLite's write lock, so the org's counters cannot change under it.
            var scheduledRunId = Guid.CreateVersion7(now).ToString();
            var queueId = Guid.CreateVersion7(now).ToString();
            var recorded = await statements.ExecuteAsync(
                """
                INSERT INTO org_scheduled_pipeline_runs (scheduled_run_id, org_slug, config_id, pipeline, scheduled_for, queue_id, status, reason, created_at)
                VALUES (@id, @org, @ConfigId, @Pipeline, @scheduledFor, @queueId, 'QUEUED', @reason, @at)
                ON CONFLICT (org_slug, pipeline, scheduled_for) DO NOTHING
                """,
                cancellationToken,
                ("id", scheduledRunId), ("org", tick.Org.Value), ("ConfigId", tick.ConfigId), ("Pipeline", tick.Pipeline), ("scheduledFor", scheduledFor), ("at", at),
                ("queueId", queueId), ("reason", tick.MissedTicks > 0 ? $"Catch-up: {tick.MissedTicks} earlier due tick(s) were not run." : null));
            if (recorded == 0)
            {
                outcomes.Add(Outcome(TickStatus.Duplicate, reason: "This tick of the pipeline was already recorded."));
                continue;
            }

            if (!counters.TryGetValue(tick.Org.Value, out var org))
            {
                counters[tick.Org.Value] = org = await LoadCountersAsync(statements, tick.Org, now, cancellationToken);
            }

            if (org.Refusal() is { } refusal)
            {
                await statements.ExecuteAsync(
                    "UPDATE org_scheduled_pipeline_runs SET status = 'SKIPPED', queue_id = NULL, reason = @reason WHERE scheduled_run_id = @id",
                    cancellationToken,
                    ("reason", refusal), ("id", scheduledRunId));
                outcomes.Add(Outcome(TickStatus.Skipped, reason: refusal));
                continue;
            }

            org.Count();
            await InsertRunAndEntryAsync(
                statements, new RunAdmission(tick.Run, QueuePriority.Scheduled, tick.MaxAttempts, tick.ScheduledFor, CountsAgainstQuota: true, now), queueId,
                $"schedule:{tick.ConfigId}:{scheduledFor}", cancellationToken);
            outcomes.Add(Outcome(TickStatus.Queued, queueId));
        }

        var usageDate = Date(QuotaCalendar.UsageDate(now));
        foreach (var (org, counter) in counters)
        {
            if (counter.Added > 0)
            {
                await statements.ExecuteAsync(
                    """
                    UPDATE org_usage_quotas SET pipelines_run_today = pipelines_run_today + @added, pipelines_run_month = pipelines_run_month + @added
                    WHERE org_slug = @org AND usage_date = @date
                    """,
                    cancellationToken,
                    ("added", counter.Added), ("org", org), ("date", usageDate));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return outcomes;
    }

    public async Task<QueueSnapshot> GetSnapshotAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var args = new { at = SqliteSchema.Timestamp(now), dayAgo = SqliteSchema.Timestamp(now.AddDays(-1)) };
        var counts = (await connection.QueryAsync<(string Status, long Count)>(new CommandDefinition(
            """
            SELECT status, COUNT(*) FROM org_pipeline_execution_queue WHERE status IN ('QUEUED', 'CLAIMED', 'RUNNING') GROUP BY status
            UNION ALL
            SELECT 'DONE_' || status, COUNT(*) FROM org_pipeline_execution_queue WHERE status IN ('COMPLETED', 'FAILED') AND updated_at >= @dayAgo GROUP BY status
            UNION ALL
            SELECT 'EXPIRED', COUNT(*) FROM org_pipeline_execution_queue WHERE status IN ('CLAIMED', 'RUNNING') AND lease_expires_at <= @at
            """,
            args,
            cancellationToken: cancellationToken))).ToDictionary(r => r.Status, r => (int)r.Count, StringComparer.Ordinal);
        var oldest = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT MIN(created_at) FROM org_pipeline_execution_queue WHERE status = 'QUEUED'", cancellationToken: cancellationToken));
        var perOrg = (await connection.QueryAsync<(string Org, long Count)>(new CommandDefinition(
            $"SELECT org_slug, COUNT(*) FROM org_pipeline_execution_queue WHERE status IN {Active} GROUP BY org_slug ORDER BY org_slug",
            cancellationToken: cancellationToken))).ToDictionary(r => r.Org, r => (int)r.Count, StringComparer.Ordinal);
        int Count(string key) => counts.TryGetValue(key, out var n) ? n : 0;
        return new QueueSnapshot(
            Count(QueueStatus.Queued),
            Count(QueueStatus.Claimed),
            Count(QueueStatus.Running),
            oldest is null ? null : Math.Max(0, (now - SqliteSchema.ParseTimestamp(oldest)).TotalSeconds),
            perOrg,
            Count("DONE_FAILED"),
            Count("DONE_COMPLETED"),
            Count("EXPIRED"));
    }

    public async Task<QuotaResetOutcome> ResetDailyQuotasAsync(DateTimeOffset now, DateOnly purgeBefore, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var today = QuotaCalendar.UsageDate(now);
        var subscriptions = (await connection.QueryAsync<(string Org, string Start)>(new CommandDefinition(
            "SELECT s.org_slug, s.subscription_start FROM org_subscriptions s JOIN org_profiles p ON p.org_slug = s.org_slug WHERE p.status <> 'DELETED'",
            transaction: transaction,
            cancellationToken: cancellationToken))).ToList();
        var reset = 0;
        using var statements = new Statements(connection, transaction);
        foreach (var (org, start) in subscriptions)
        {
            if (await EnsureTodayAsync(statements, org, DateOnly.FromDateTime(SqliteSchema.ParseTimestamp(start).UtcDateTime), now, cancellationToken) is { Created: true })
            {
                reset++;
            }
        }

        var purgeTimestamp = SqliteSchema.Timestamp(new DateTimeOffset(purgeBefore.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero));
        var quotaRows = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_usage_quotas WHERE usage_date < @date", new { date = Date(purgeBefore) }, transaction, cancellationToken: cancellationToken));
        var entries = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_pipeline_execution_queue WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND updated_at < @ts",
            new { ts = purgeTimestamp }, transaction, cancellationToken: cancellationToken));
        var ticks = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_scheduled_pipeline_runs WHERE created_at < @ts", new { ts = purgeTimestamp }, transaction, cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
        return new QuotaResetOutcome(today, reset, quotaRows, entries, ticks);
    }

    /// <summary>
    /// Admission inside an open transaction: checks the subscription and counts the run (when it counts), then inserts
    /// the run row and its queue entry. On any outcome but <see cref="AdmissionOutcome.Admitted"/> the caller must roll back.
    /// </summary>
    private static async Task<AdmissionOutcome> AdmitAsync(Statements statements, RunAdmission admission, string? queueKey, CancellationToken cancellationToken)
    {
        var org = admission.Org;
        if (admission.CountsAgainstQuota)
        {
            var subscription = await statements.QuerySubscriptionAsync(org.Value, cancellationToken);
            if (subscription is null)
            {
                return new AdmissionOutcome.SubscriptionInactive($"Organization '{org}' has no subscription.");
            }

            var record = subscription.ToRecord();
            if (!QuotaCalendar.IsUsable(record, admission.Now, out var reason))
            {
                return new AdmissionOutcome.SubscriptionInactive(reason);
            }

            var start = DateOnly.FromDateTime(record.SubscriptionStart.UtcDateTime);
            var usage = await EnsureTodayAsync(statements, org.Value, start, admission.Now, cancellationToken);
            if (QuotaRules.Exceeded(record, start, usage.Today, usage.Month, admission.Now) is { } limit)
            {
                return new AdmissionOutcome.OverQuota(limit);
            }

            await statements.ExecuteAsync(
                """
                UPDATE org_usage_quotas SET pipelines_run_today = pipelines_run_today + 1, pipelines_run_month = pipelines_run_month + 1
                WHERE org_slug = @org AND usage_date = @date
                """,
                cancellationToken,
                ("org", org.Value), ("date", Date(QuotaCalendar.UsageDate(admission.Now))));
        }

        var queueId = Guid.CreateVersion7(admission.Now).ToString();
        try
        {
            await InsertRunAndEntryAsync(statements, admission, queueId, queueKey, cancellationToken);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
        {
            return new AdmissionOutcome.DuplicateKey();
        }

        return new AdmissionOutcome.Admitted(queueId, admission.Run.PipelineLoggingId);
    }

    /// <summary>The PENDING run row and its QUEUED entry; a unique key already taken throws (SQLite error 19).</summary>
    private static async Task InsertRunAndEntryAsync(Statements statements, RunAdmission admission, string queueId, string? queueKey, CancellationToken cancellationToken)
    {
        await statements.ExecuteAsync(SqliteControlPlaneStore.InsertRunSql, cancellationToken, SqliteControlPlaneStore.RunValues(admission.Run));
        var at = SqliteSchema.Timestamp(admission.Now);
        await statements.ExecuteAsync(
            """
            INSERT INTO org_pipeline_execution_queue (queue_id, org_slug, pipeline, parameters, priority, status, scheduled_for, attempts, max_attempts,
                lease_owner, lease_token, lease_expires_at, idempotency_key, pipeline_logging_id, last_error, created_at, updated_at)
            VALUES (@queueId, @org, @pipeline, @parameters, @priority, 'QUEUED', @scheduledFor, 0, @maxAttempts,
                NULL, NULL, NULL, @queueKey, @runId, NULL, @at, @at)
            """,
            cancellationToken,
            ("queueId", queueId), ("org", admission.Org.Value), ("pipeline", admission.Run.PipelinePath), ("parameters", JsonSerializer.Serialize(admission.Run.Parameters)),
            ("priority", admission.Priority), ("scheduledFor", SqliteSchema.Timestamp(admission.ScheduledFor)), ("maxAttempts", admission.MaxAttempts),
            ("queueKey", queueKey), ("runId", admission.Run.PipelineLoggingId), ("at", at));
    }

    /// <summary>An org's subscription and today's counters, read once per batch of ticks and counted in memory.</summary>
    private static async Task<OrgCounters> LoadCountersAsync(Statements statements, Core.Organizations.OrgSlug org, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var subscription = await statements.QuerySubscriptionAsync(org.Value, cancellationToken);
        if (subscription is null)
        {
            return new OrgCounters(null, $"Organization '{org}' has no subscription.", default, 0, 0, now);
        }

        var record = subscription.ToRecord();
        if (!QuotaCalendar.IsUsable(record, now, out var reason))
        {
            return new OrgCounters(record, reason, default, 0, 0, now);
        }

        var start = DateOnly.FromDateTime(record.SubscriptionStart.UtcDateTime);
        var usage = await EnsureTodayAsync(statements, org.Value, start, now, cancellationToken);
        return new OrgCounters(record, null, start, usage.Today, usage.Month, now);
    }

    /// <summary>Quota state of one org during a batch of ticks.</summary>
    private sealed class OrgCounters(Core.Organizations.OrgSubscription? subscription, string? inactive, DateOnly start, int today, int month, DateTimeOffset now)
    {
        public int Added { get; private set; }

        /// <summary>Why the next run is refused, or null when it is admitted.</summary>
        public string? Refusal()
        {
            if (inactive is not null || subscription is null)
            {
                return inactive ?? "No subscription.";
            }

            return QuotaRules.Exceeded(subscription, start, today + Added, month + Added, now)?.Describe();
        }

        public void Count() => Added++;
    }

    /// <summary>
    /// Today's counters of the org, creating today's row when missing: 0 runs today and, for the month, the runs of the
    /// earlier days of the current billing month.
    /// </summary>
    private static async Task<(int Today, int Month, bool Created)> EnsureTodayAsync(
        Statements statements, string org, DateOnly subscriptionStart, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var today = QuotaCalendar.UsageDate(now);
        if (await statements.QueryCountersAsync(org, Date(today), cancellationToken) is { } existing)
        {
            return ((int)existing.Today, (int)existing.Month, false);
        }

        var monthStart = QuotaCalendar.MonthStart(subscriptionStart, today);
        var month = (long)(await statements.ScalarAsync(
            "SELECT COALESCE(SUM(pipelines_run_today), 0) FROM org_usage_quotas WHERE org_slug = @org AND usage_date >= @start AND usage_date < @date",
            cancellationToken,
            ("org", org), ("start", Date(monthStart)), ("date", Date(today))))!;
        await statements.ExecuteAsync(
            """
            INSERT INTO org_usage_quotas (org_slug, usage_date, pipelines_run_today, pipelines_run_month, concurrent_running, last_reset_daily, last_reset_monthly)
            VALUES (@org, @date, 0, @month, 0, @daily, @monthly)
            """,
            cancellationToken,
            ("org", org), ("date", Date(today)), ("month", month),
            ("daily", SqliteSchema.Timestamp(new DateTimeOffset(today.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero))),
            ("monthly", SqliteSchema.Timestamp(new DateTimeOffset(monthStart.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero))));
        return (0, (int)month, true);
    }

    /// <summary>Keeps today's <c>concurrent_running</c> equal to the org's live leases (informational; claims count the queue).</summary>
    private static Task RecountRunningAsync(SqliteConnection connection, SqliteTransaction transaction, string org, DateTimeOffset now, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            $"""
            UPDATE org_usage_quotas SET concurrent_running = (SELECT COUNT(*) FROM org_pipeline_execution_queue
                WHERE org_slug = @org AND status IN {Active} AND lease_expires_at > @at)
            WHERE org_slug = @org AND usage_date = (SELECT MAX(usage_date) FROM org_usage_quotas WHERE org_slug = @org)
            """,
            new { org, at = SqliteSchema.Timestamp(now) },
            transaction,
            cancellationToken: cancellationToken));

    private static Task SetEntryAsync(SqliteConnection connection, SqliteTransaction transaction, string queueId, string status, string error, string? at, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_pipeline_execution_queue SET status = @status, last_error = @error, lease_expires_at = NULL, updated_at = @at WHERE queue_id = @queueId",
            new { queueId, status, error, at },
            transaction,
            cancellationToken: cancellationToken));

    /// <summary>Closes the unfinished steps of an abandoned attempt: the one that ran failed, those not reached skipped.</summary>
    private static Task CloseStepsAsync(SqliteConnection connection, SqliteTransaction transaction, string run, string reason, string? at, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_meta_step_logs SET status = CASE status WHEN 'RUNNING' THEN 'FAILED' ELSE 'SKIPPED' END, end_time = @at,
                error_class = CASE status WHEN 'RUNNING' THEN 'LeaseExpired' ELSE NULL END, error_message = CASE status WHEN 'RUNNING' THEN @reason ELSE NULL END
            WHERE pipeline_logging_id = @run AND status IN ('PENDING', 'RUNNING')
            """,
            new { run, reason, at },
            transaction,
            cancellationToken: cancellationToken));

    private static string? QueueIdempotencyKey(PipelineRunRecord run) => run.IdempotencyKey is { } key ? "api:" + key : null;

    private static string Date(DateOnly date) => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => files.OpenAsync(DatasetRef.Central, cancellationToken);

    /// <summary>
    /// The statements of one transaction, each prepared once and re-run with new values: a trigger admits hundreds of
    /// ticks per transaction with the same ten statements, and re-preparing them per tick (as Dapper does) dominated it.
    /// </summary>
    private sealed class Statements(SqliteConnection connection, SqliteTransaction transaction) : IDisposable
    {
        private readonly Dictionary<string, SqliteCommand> _prepared = new(StringComparer.Ordinal);

        public Task<int> ExecuteAsync(string sql, CancellationToken cancellationToken, params ReadOnlySpan<(string Name, object? Value)> values) =>
            Bind(sql, values).ExecuteNonQueryAsync(cancellationToken);

        public Task<object?> ScalarAsync(string sql, CancellationToken cancellationToken, params ReadOnlySpan<(string Name, object? Value)> values) =>
            Bind(sql, values).ExecuteScalarAsync(cancellationToken);

        public async Task<SqliteControlPlaneStore.SubscriptionRow?> QuerySubscriptionAsync(string org, CancellationToken cancellationToken)
        {
            var command = Bind(
                "SELECT org_slug, plan_name, status, daily_limit, monthly_limit, concurrent_limit, trial_ends_at, subscription_start, updated_at FROM org_subscriptions WHERE org_slug = @org",
                [("org", org)]);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            return new SqliteControlPlaneStore.SubscriptionRow
            {
                org_slug = reader.GetString(0),
                plan_name = reader.GetString(1),
                status = reader.GetString(2),
                daily_limit = reader.GetInt64(3),
                monthly_limit = reader.GetInt64(4),
                concurrent_limit = reader.GetInt64(5),
                trial_ends_at = reader.IsDBNull(6) ? null : reader.GetString(6),
                subscription_start = reader.GetString(7),
                updated_at = reader.GetString(8),
            };
        }

        public async Task<(long Today, long Month)?> QueryCountersAsync(string org, string date, CancellationToken cancellationToken)
        {
            var command = Bind(
                "SELECT pipelines_run_today, pipelines_run_month FROM org_usage_quotas WHERE org_slug = @org AND usage_date = @date",
                [("org", org), ("date", date)]);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? (reader.GetInt64(0), reader.GetInt64(1)) : null;
        }

        public void Dispose()
        {
            foreach (var command in _prepared.Values)
            {
                command.Dispose();
            }
        }

        private SqliteCommand Bind(string sql, ReadOnlySpan<(string Name, object? Value)> values)
        {
            if (!_prepared.TryGetValue(sql, out var command))
            {
                command = connection.CreateCommand();
                command.CommandText = sql;
                command.Transaction = transaction;
                _prepared[sql] = command;
            }

            command.Parameters.Clear();
            foreach (var (name, value) in values)
            {
                command.Parameters.AddWithValue("@" + name, value ?? DBNull.Value);
            }

            return command;
        }
    }

#pragma warning disable IDE1006, SA1300 // Row classes mirror the snake_case columns they are read from.
    private sealed class ClaimRow
    {
        public string queue_id { get; set; } = "";
        public string org_slug { get; set; } = "";
        public string pipeline_logging_id { get; set; } = "";
        public long attempts { get; set; }
    }

    private sealed class ExpiredRow
    {
        public string queue_id { get; set; } = "";
        public string org_slug { get; set; } = "";
        public string pipeline_logging_id { get; set; } = "";
        public long attempts { get; set; }
        public long max_attempts { get; set; }
        public string? lease_owner { get; set; }
        public string? lease_expires_at { get; set; }
        public string? run_status { get; set; }
    }
#pragma warning restore IDE1006, SA1300
}
