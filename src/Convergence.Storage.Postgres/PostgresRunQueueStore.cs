using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Dapper;
using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>
/// The run queue on PostgreSQL, shared by any number of service instances. The database does the concurrency:
/// admission locks the org's subscription row (<c>FOR UPDATE</c>) so counting and checking its quota is serial per org;
/// claims pick entries with <c>FOR UPDATE SKIP LOCKED</c> and take a transaction-scoped advisory lock on the org before
/// counting its live leases, so two instances cannot both fill the org's last slot.
/// </summary>
internal sealed class PostgresRunQueueStore(PostgresControlPlaneSource source) : IRunQueueStore
{
    private const string Active = "('CLAIMED', 'RUNNING')";

    public async Task<AdmissionOutcome> AdmitAsync(RunAdmission admission, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var outcome = await AdmitAsync(connection, transaction, admission, admission.Run.IdempotencyKey is { } key ? "api:" + key : null, cancellationToken);
        if (outcome is AdmissionOutcome.Admitted)
        {
            await transaction.CommitAsync(cancellationToken);
        }

        return outcome;
    }

    public async Task<QueueLease?> ClaimAsync(string owner, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var at = PostgresValues.Timestamp(now);
        var expires = now + lease;
        var full = new List<string>();
        while (true)
        {
            var token = Guid.NewGuid().ToString("N");
            using var results = await connection.QueryMultipleAsync(new CommandDefinition(
                ClaimSql,
                new { at, full = full.ToArray(), owner, token, expires = PostgresValues.Timestamp(expires) },
                cancellationToken: cancellationToken));
            var candidate = await results.ReadSingleAsync<CandidateRow>();
            if (candidate.org_slug is null)
            {
                return null;
            }

            await results.ReadAsync();
            var claimed = await results.ReadSingleOrDefaultAsync<ClaimRow<DateTime?>>();
            var run = await results.ReadSingleOrDefaultAsync<RunRow<DateTime?>>();
            if (claimed is null)
            {
                // The org's slots filled between the candidate's pre-check and the count under its lock.
                full.Add(candidate.org_slug);
                continue;
            }

            return new QueueLease(claimed.queue_id, OrgSlug.From(claimed.org_slug), claimed.pipeline_logging_id, owner, token, (int)claimed.attempts, expires,
                claimed.Deferred(PostgresRowValues.Timestamp))
            {
                Run = run?.ToRecord(PostgresRowValues.Timestamp),
            };
        }
    }

    /// <summary>
    /// A claim in one round trip: a batch without an explicit transaction runs in one implicit transaction, and its
    /// statements in order, each on its own snapshot. The first locks one candidate (<c>FOR UPDATE SKIP LOCKED</c>, so
    /// parallel claimers lock different entries) and keeps its id in a transaction-local setting for the others; the
    /// second takes the org's advisory lock, so the slot count of the third, on a snapshot taken after the lock is held,
    /// sees every committed claim of that org (claims of one org are serial across instances). The run row (returned, so
    /// the worker need not read it) and the quota recount change only if the entry was claimed.
    /// </summary>
    /// <remarks>
    /// <para>The candidate's order is exactly the index's (status, priority, created_at): a tie-break column the index lacks
    /// would add an incremental sort that reads (and checks the org's slots of) at least 32 entries before returning one.</para>
    /// <para>The later statements find their rows by primary key only, with values rather than joins: Npgsql prepares them,
    /// and a generic plan made while the tables were nearly empty (a new database's first claims) once chose the status
    /// indexes instead (every QUEUED entry read to find the claimed one, every PENDING run to find its run), a cost that grew
    /// with the backlog for as long as the connection lived. The claim needs no status check: the candidate's row lock
    /// keeps the entry QUEUED until this transaction ends.</para>
    /// </remarks>
    private const string ClaimSql =
        $"""
        WITH candidate AS (
            SELECT q.queue_id, q.org_slug
            FROM org_pipeline_execution_queue q
            WHERE q.status = 'QUEUED' AND NOT (q.org_slug = ANY(@full))
              AND (SELECT COUNT(*) FROM org_pipeline_execution_queue r
                   WHERE r.org_slug = q.org_slug AND r.status IN {Active} AND r.lease_expires_at > @at)
                  < COALESCE((SELECT concurrent_limit FROM org_subscriptions s WHERE s.org_slug = q.org_slug), 1)
            ORDER BY q.priority, q.created_at
            LIMIT 1
            FOR UPDATE OF q SKIP LOCKED)
        SELECT set_config('convergence.claim', COALESCE((SELECT queue_id FROM candidate), ''), true) AS queue_id, (SELECT org_slug FROM candidate) AS org_slug;
        SELECT pg_advisory_xact_lock(hashtext('claim:' || org_slug)) FROM org_pipeline_execution_queue WHERE queue_id = {ClaimedId};
        UPDATE org_pipeline_execution_queue q SET status = 'CLAIMED', lease_owner = @owner, lease_token = @token, lease_expires_at = @expires,
            attempts = q.attempts + 1, updated_at = @at
        WHERE q.queue_id = {ClaimedId}
          AND (SELECT COUNT(*) FROM org_pipeline_execution_queue r
               WHERE r.org_slug = q.org_slug AND r.status IN {Active} AND r.lease_expires_at > @at)
              < COALESCE((SELECT concurrent_limit FROM org_subscriptions s WHERE s.org_slug = q.org_slug), 1)
        RETURNING q.queue_id, q.org_slug, q.pipeline_logging_id, q.attempts, q.pipeline, q.parameters::text AS parameters, q.scheduled_for, q.created_at;
        UPDATE org_meta_pipeline_runs SET attempt = (SELECT attempts FROM org_pipeline_execution_queue WHERE queue_id = {ClaimedId}), worker_id = @owner, heartbeat_at = @at
        WHERE pipeline_logging_id = (SELECT pipeline_logging_id FROM org_pipeline_execution_queue WHERE queue_id = {ClaimedId} AND lease_token = @token)
          AND status = 'PENDING'
        RETURNING {PostgresControlPlaneStore.RunColumns};
        UPDATE org_usage_quotas o SET concurrent_running = (SELECT COUNT(*) FROM org_pipeline_execution_queue r
            WHERE r.org_slug = o.org_slug AND r.status IN {Active} AND r.lease_expires_at > @at)
        WHERE o.org_slug = (SELECT c.org_slug FROM org_pipeline_execution_queue c WHERE c.queue_id = {ClaimedId} AND c.lease_token = @token)
          AND o.usage_date = (SELECT MAX(m.usage_date) FROM org_usage_quotas m WHERE m.org_slug = o.org_slug)
        """;

    /// <summary>The id of the entry the claim batch's first statement locked (empty when there was none).</summary>
    private const string ClaimedId = "current_setting('convergence.claim')";

    public async Task<bool> StartAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // One statement: the entry's move to RUNNING is the fence, and the run and step rows are written only if it held.
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        return await connection.ExecuteScalarAsync<long>(PostgresRuns.FencedSave(
            "UPDATE org_pipeline_execution_queue SET status = 'RUNNING', updated_at = @queue_at WHERE queue_id = @queue_id AND lease_token = @queue_token AND status = 'CLAIMED' RETURNING 1",
            new { queue_id = lease.QueueId, queue_token = lease.Token, queue_at = PostgresValues.Timestamp(now) },
            run,
            steps,
            cancellationToken)) == 1;
    }

    public async Task<IReadOnlyList<QueueLease>> RenewAsync(IReadOnlyCollection<QueueLease> leases, DateTimeOffset expiresAt, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (leases.Count == 0)
        {
            return [];
        }

        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var renewed = (await connection.QueryAsync<string>(new CommandDefinition(
            $"""
            UPDATE org_pipeline_execution_queue SET lease_expires_at = @expires, updated_at = @at
            WHERE queue_id = ANY(@ids) AND lease_token = ANY(@tokens) AND status IN {Active}
            RETURNING queue_id || ':' || lease_token
            """,
            new
            {
                ids = leases.Select(l => l.QueueId).ToArray(), tokens = leases.Select(l => l.Token).ToArray(),
                expires = PostgresValues.Timestamp(expiresAt), at = PostgresValues.Timestamp(now),
            },
            cancellationToken: cancellationToken))).ToHashSet(StringComparer.Ordinal);
        return [.. leases.Where(l => !renewed.Contains(l.QueueId + ":" + l.Token))];
    }

    public async Task<bool> CompleteAsync(QueueLease lease, string status, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // One round trip: a batch without an explicit transaction runs in one implicit transaction, so the recount
        // commits with the entry's end (and is skipped when the lease was lost).
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        using var results = await connection.QueryMultipleAsync(new CommandDefinition(CloseSql, CloseArgs(lease, status, error, now), cancellationToken: cancellationToken));
        return (await results.ReadAsync<int>()).Any();
    }

    public async Task<bool> FinishAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // One round trip, one implicit transaction: the entry's close (and recount), then the run's and its steps' upserts.
        var (sql, args) = PostgresRuns.SaveStatements(run, steps);
        args.AddDynamicParams(CloseArgs(lease, run.Status, run.ErrorMessage, now));
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        using var results = await connection.QueryMultipleAsync(new CommandDefinition(CloseSql + ";\n" + sql, args, cancellationToken: cancellationToken));
        return (await results.ReadAsync<int>()).Any();
    }

    /// <summary>
    /// Closes an entry under its lease with a final status (a row returned when it did; without an error the entry keeps
    /// its <c>last_error</c>), then recounts the org's live leases if it did. Its parameter names (<see cref="CloseArgs"/>)
    /// do not clash with a run's or its steps' (<see cref="PostgresRuns"/>), so a run's save can follow in the same batch.
    /// </summary>
    private const string CloseSql =
        $"""
        UPDATE org_pipeline_execution_queue SET status = @entry_status, last_error = COALESCE(CAST(@entry_error AS text), last_error), lease_expires_at = NULL, updated_at = @at
        WHERE queue_id = @entry_id AND lease_token = @entry_token AND status IN {Active}
        RETURNING 1;
        {RecountSql} AND EXISTS (SELECT 1 FROM org_pipeline_execution_queue WHERE queue_id = @entry_id AND lease_token = @entry_token AND status = @entry_status)
        """;

    private static object CloseArgs(QueueLease lease, string status, string? error, DateTimeOffset now) => new
    {
        entry_id = lease.QueueId, entry_token = lease.Token, entry_status = status, entry_error = error, at = PostgresValues.Timestamp(now), org = lease.Org.Value,
    };

    public async Task<RescueOutcome> RescueExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var at = PostgresValues.Timestamp(now);
        var expired = (await connection.QueryAsync<ExpiredRow<DateTime?>>(new CommandDefinition(
            $"""
            SELECT q.queue_id, q.org_slug, q.pipeline_logging_id, q.attempts, q.max_attempts, q.lease_owner, q.lease_expires_at, r.status AS run_status
            FROM org_pipeline_execution_queue q LEFT JOIN org_meta_pipeline_runs r ON r.pipeline_logging_id = q.pipeline_logging_id
            WHERE q.status IN {Active} AND q.lease_expires_at <= @at
            FOR UPDATE OF q SKIP LOCKED
            """,
            new { at },
            transaction,
            cancellationToken: cancellationToken))).ToList();
        int requeued = 0, failed = 0;
        foreach (var entry in expired)
        {
            if (entry.run_status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled)
            {
                await SetEntryAsync(connection, transaction, entry.queue_id, entry.run_status, "Closed by the rescuer: the run had finished.", at, cancellationToken);
                continue;
            }

            var reason = QuotaRules.LeaseExpired(entry.lease_owner, PostgresValues.FromTimestamp(entry.lease_expires_at), entry.attempts, entry.max_attempts, lastAttempt: false);
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
                var final = QuotaRules.LeaseExpired(entry.lease_owner, PostgresValues.FromTimestamp(entry.lease_expires_at), entry.attempts, entry.max_attempts, lastAttempt: true);
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
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var at = PostgresValues.Timestamp(now);
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

    /// <remarks>
    /// Set-based, as on SQLite: each step is one statement over the whole batch (the ticks' values as arrays, read with
    /// <c>unnest</c>), in one transaction. 1. Each schedule advances from the next_run_time the trigger read
    /// (compare-and-swap: a concurrent trigger on another instance waits for the row and then finds it moved, so its tick
    /// is stale). 2. Each advanced tick's entry, once per (org, pipeline, scheduled_for). 3. The recorded ticks' orgs are
    /// locked in org order (<c>FOR UPDATE</c> on their subscriptions, as an API admission locks its one org), their
    /// counters read once and counted in memory in tick order, and the runs added. 4. Over-quota ticks keep their entry as
    /// SKIPPED with the reason.
    /// </remarks>
    public async Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(TickBatch batch, CancellationToken cancellationToken)
    {
        var (ticks, now) = (batch.Ticks, batch.Now);
        if (ticks.Count == 0)
        {
            return [];
        }

        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var at = PostgresValues.Timestamp(now);

        var advanced = (await connection.QueryAsync<string>(new CommandDefinition(
            """
            UPDATE org_pipeline_configs AS c SET next_run_time = t.next, last_run_time = t.scheduled_for, updated_at = @at
            FROM unnest(@ids, @orgs, @expected, @next, @scheduled) AS t(config_id, org_slug, expected, next, scheduled_for)
            WHERE c.config_id = t.config_id AND c.org_slug = t.org_slug AND c.is_active AND c.next_run_time = t.expected
            RETURNING c.config_id
            """,
            new
            {
                at,
                ids = ticks.Select(t => t.ConfigId).ToArray(),
                orgs = ticks.Select(t => t.Org.Value).ToArray(),
                expected = ticks.Select(t => PostgresValues.Timestamp(t.ExpectedNextRunTime)!.Value).ToArray(),
                next = ticks.Select(t => PostgresValues.Timestamp(t.NextRunTime)!.Value).ToArray(),
                scheduled = ticks.Select(t => PostgresValues.Timestamp(t.ScheduledFor)!.Value).ToArray(),
            },
            transaction,
            cancellationToken: cancellationToken))).ToHashSet(StringComparer.Ordinal);

        var pending = ticks.Where(t => advanced.Contains(t.ConfigId)).ToList();
        var recorded = pending.Count == 0 ? [] : (await connection.QueryAsync<string>(new CommandDefinition(
            $"""
            INSERT INTO org_pipeline_execution_queue (queue_id, org_slug, pipeline, parameters, priority, status, scheduled_for, attempts, max_attempts,
                lease_owner, lease_token, lease_expires_at, idempotency_key, pipeline_logging_id, last_error, created_at, updated_at)
            SELECT e.id, e.org, e.pipeline, CAST(e.parameters AS jsonb), {QueuePriority.Scheduled}, 'QUEUED', e.scheduled_for, 0, e.max_attempts,
                NULL, NULL, NULL, e.key, e.id, e.note, @at, @at
            FROM unnest(@ids, @orgs, @pipelines, @parameters, @scheduled, @maxAttempts, @keys, @notes)
                AS e(id, org, pipeline, parameters, scheduled_for, max_attempts, key, note)
            ON CONFLICT (org_slug, idempotency_key) DO NOTHING
            RETURNING queue_id
            """,
            new
            {
                at,
                ids = pending.Select(t => t.RunId).ToArray(),
                orgs = pending.Select(t => t.Org.Value).ToArray(),
                pipelines = pending.Select(t => t.Pipeline).ToArray(),
                parameters = pending.Select(t => JsonSerializer.Serialize(t.Parameters)).ToArray(),
                scheduled = pending.Select(t => PostgresValues.Timestamp(t.ScheduledFor)!.Value).ToArray(),
                maxAttempts = pending.Select(t => (long)t.MaxAttempts).ToArray(),
                keys = pending.Select(t => t.QueueKey).ToArray(),
                notes = pending.Select(t => t.CatchUpNote).ToArray(),
            },
            transaction,
            cancellationToken: cancellationToken))).ToHashSet(StringComparer.Ordinal);

        var counters = await LoadCountersAsync(
            connection, transaction, [.. pending.Where(t => recorded.Contains(t.RunId)).Select(t => t.Org.Value).Distinct(StringComparer.Ordinal)], now, cancellationToken);
        var outcomes = new List<TickOutcome>(ticks.Count);
        var skipped = new List<(string Id, string Reason)>();
        foreach (var tick in ticks)
        {
            TickOutcome Outcome(string status, string? queueId = null, string? reason = null) =>
                new(tick.ConfigId, tick.Org, tick.Pipeline, tick.ScheduledFor, status, queueId, reason);

            if (!advanced.Contains(tick.ConfigId))
            {
                outcomes.Add(Outcome(TickStatus.Stale, reason: "The schedule was changed or advanced by another trigger."));
            }
            else if (!recorded.Contains(tick.RunId))
            {
                outcomes.Add(Outcome(TickStatus.Duplicate, reason: "This tick of the pipeline was already recorded."));
            }
            else if (counters[tick.Org.Value].Refusal() is { } refusal)
            {
                skipped.Add((tick.RunId, refusal));
                outcomes.Add(Outcome(TickStatus.Skipped, reason: refusal));
            }
            else
            {
                counters[tick.Org.Value].Count();
                outcomes.Add(Outcome(TickStatus.Queued, tick.RunId));
            }
        }

        var added = counters.Where(c => c.Value.Added > 0).ToList();
        if (added.Count > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_usage_quotas AS u SET pipelines_run_today = u.pipelines_run_today + a.n, pipelines_run_month = u.pipelines_run_month + a.n
                FROM unnest(@orgs, @counts) AS a(org_slug, n)
                WHERE u.org_slug = a.org_slug AND u.usage_date = @date
                """,
                new { orgs = added.Select(c => c.Key).ToArray(), counts = added.Select(c => (long)c.Value.Added).ToArray(), date = PostgresValues.Date(QuotaCalendar.UsageDate(now)) },
                transaction,
                cancellationToken: cancellationToken));
        }

        if (skipped.Count > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_pipeline_execution_queue AS q SET status = 'SKIPPED', pipeline_logging_id = NULL, last_error = s.reason
                FROM unnest(@ids, @reasons) AS s(queue_id, reason) WHERE q.queue_id = s.queue_id
                """,
                new { ids = skipped.Select(x => x.Id).ToArray(), reasons = skipped.Select(x => x.Reason).ToArray() },
                transaction,
                cancellationToken: cancellationToken));
        }

        await transaction.CommitAsync(cancellationToken);
        return outcomes;
    }

    /// <summary>
    /// The quota state of each org of a batch of ticks: their subscriptions locked in org order and read once, today's
    /// counter rows created where missing (the month's runs so far carried over), and the counters read.
    /// </summary>
    private static async Task<Dictionary<string, OrgQuotaCounters>> LoadCountersAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<string> orgs, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var counters = new Dictionary<string, OrgQuotaCounters>(StringComparer.Ordinal);
        if (orgs.Count == 0)
        {
            return counters;
        }

        var subscriptions = (await connection.QueryAsync<SubscriptionRow<DateTime?>>(new CommandDefinition(
            "SELECT * FROM org_subscriptions WHERE org_slug = ANY(@orgs) ORDER BY org_slug FOR UPDATE",
            new { orgs = orgs.ToArray() },
            transaction,
            cancellationToken: cancellationToken))).Select(r => r.ToRecord(PostgresRowValues.Timestamp)).ToDictionary(r => r.OrgSlug.Value, StringComparer.Ordinal);
        var usable = OrgQuotaCounters.Usable(orgs, subscriptions, now, counters);

        if (usable.Count == 0)
        {
            return counters;
        }

        var today = QuotaCalendar.UsageDate(now);
        var monthStarts = usable.ToDictionary(u => u.Key, u => QuotaCalendar.MonthStart(u.Value, today), StringComparer.Ordinal);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_usage_quotas (org_slug, usage_date, pipelines_run_today, pipelines_run_month, concurrent_running, last_reset_daily, last_reset_monthly)
            SELECT o.org_slug, @date, 0,
                COALESCE((SELECT SUM(q.pipelines_run_today) FROM org_usage_quotas AS q WHERE q.org_slug = o.org_slug AND q.usage_date >= o.month_start AND q.usage_date < @date), 0),
                0, @daily, o.month_start::timestamp AT TIME ZONE 'UTC'
            FROM unnest(@orgs, @monthStarts) AS o(org_slug, month_start)
            ON CONFLICT (org_slug, usage_date) DO NOTHING
            """,
            new
            {
                date = PostgresValues.Date(today),
                daily = PostgresValues.Timestamp(new DateTimeOffset(today.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)),
                orgs = monthStarts.Keys.ToArray(),
                monthStarts = monthStarts.Values.Select(PostgresValues.Date).ToArray(),
            },
            transaction,
            cancellationToken: cancellationToken));
        var usage = await connection.QueryAsync<(string Org, long Today, long Month)>(new CommandDefinition(
            "SELECT org_slug, pipelines_run_today, pipelines_run_month FROM org_usage_quotas WHERE usage_date = @date AND org_slug = ANY(@orgs)",
            new { date = PostgresValues.Date(today), orgs = monthStarts.Keys.ToArray() },
            transaction,
            cancellationToken: cancellationToken));
        foreach (var (org, todayRuns, monthRuns) in usage)
        {
            counters[org] = new OrgQuotaCounters(subscriptions[org], null, usable[org], (int)todayRuns, (int)monthRuns, now);
        }

        return counters;
    }

    public async Task<QueueSnapshot> GetSnapshotAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var args = new { at = PostgresValues.Timestamp(now), dayAgo = PostgresValues.Timestamp(now.AddDays(-1)) };
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
        var oldest = await connection.ExecuteScalarAsync<DateTime?>(new CommandDefinition(
            "SELECT MIN(created_at) FROM org_pipeline_execution_queue WHERE status = 'QUEUED'", cancellationToken: cancellationToken));
        var perOrg = (await connection.QueryAsync<(string Org, long Count)>(new CommandDefinition(
            $"SELECT org_slug, COUNT(*) FROM org_pipeline_execution_queue WHERE status IN {Active} GROUP BY org_slug ORDER BY org_slug",
            cancellationToken: cancellationToken))).ToDictionary(r => r.Org, r => (int)r.Count, StringComparer.Ordinal);
        int Count(string key) => counts.TryGetValue(key, out var n) ? n : 0;
        return new QueueSnapshot(
            Count(QueueStatus.Queued),
            Count(QueueStatus.Claimed),
            Count(QueueStatus.Running),
            oldest is { } o ? Math.Max(0, (now - PostgresValues.FromTimestamp(o)).TotalSeconds) : null,
            perOrg,
            Count("DONE_FAILED"),
            Count("DONE_COMPLETED"),
            Count("EXPIRED"));
    }

    public async Task<QuotaResetOutcome> ResetDailyQuotasAsync(DateTimeOffset now, DateOnly purgeBefore, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var today = QuotaCalendar.UsageDate(now);
        var subscriptions = (await connection.QueryAsync<(string Org, DateTime Start)>(new CommandDefinition(
            "SELECT s.org_slug, s.subscription_start FROM org_subscriptions s JOIN org_profiles p ON p.org_slug = s.org_slug WHERE p.status <> 'DELETED'",
            transaction: transaction,
            cancellationToken: cancellationToken))).ToList();
        var reset = 0;
        foreach (var (org, start) in subscriptions)
        {
            if (await EnsureTodayAsync(connection, transaction, org, DateOnly.FromDateTime(start), now, cancellationToken) is { Created: true })
            {
                reset++;
            }
        }

        var purgeTimestamp = PostgresValues.Timestamp(new DateTimeOffset(purgeBefore.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero));
        var quotaRows = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_usage_quotas WHERE usage_date < @date", new { date = PostgresValues.Date(purgeBefore) }, transaction, cancellationToken: cancellationToken));
        var entries = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_pipeline_execution_queue WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED') AND updated_at < @ts",
            new { ts = purgeTimestamp }, transaction, cancellationToken: cancellationToken));
        var ticks = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_scheduled_pipeline_runs WHERE created_at < @ts", new { ts = purgeTimestamp }, transaction, cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
        return new QuotaResetOutcome(today, reset, quotaRows, entries, ticks);
    }

    private static async Task<AdmissionOutcome> AdmitAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, RunAdmission admission, string? queueKey, CancellationToken cancellationToken)
    {
        var org = admission.Org;
        if (admission.CountsAgainstQuota && await CountAsync(connection, transaction, org, admission.Now, cancellationToken) is { } refused)
        {
            return refused;
        }

        await transaction.SaveAsync("admit", cancellationToken);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(PostgresRuns.InsertSql, PostgresRuns.Args(admission.Run), transaction, cancellationToken: cancellationToken));
            var queueId = Guid.CreateVersion7(admission.Now).ToString();
            var at = PostgresValues.Timestamp(admission.Now);
            await connection.ExecuteAsync(new CommandDefinition(
                """
                INSERT INTO org_pipeline_execution_queue (queue_id, org_slug, pipeline, parameters, priority, status, scheduled_for, attempts, max_attempts,
                    lease_owner, lease_token, lease_expires_at, idempotency_key, pipeline_logging_id, last_error, created_at, updated_at)
                VALUES (@queueId, @org, @pipeline, CAST(@parameters AS jsonb), @priority, 'QUEUED', @scheduledFor, 0, @maxAttempts,
                    NULL, NULL, NULL, @queueKey, @runId, NULL, @at, @at)
                """,
                new
                {
                    queueId, org = org.Value, pipeline = admission.Run.PipelinePath, parameters = JsonSerializer.Serialize(admission.Run.Parameters),
                    priority = (long)admission.Priority, scheduledFor = PostgresValues.Timestamp(admission.ScheduledFor), maxAttempts = (long)admission.MaxAttempts,
                    queueKey, runId = admission.Run.PipelineLoggingId, at,
                },
                transaction,
                cancellationToken: cancellationToken));
            await transaction.ReleaseAsync("admit", cancellationToken);
            return new AdmissionOutcome.Admitted(queueId, admission.Run.PipelineLoggingId);
        }
        catch (PostgresException ex) when (PostgresValues.IsUniqueViolation(ex))
        {
            await transaction.RollbackAsync("admit", cancellationToken);
            return new AdmissionOutcome.DuplicateKey();
        }
    }

    /// <summary>
    /// Checks the org's subscription and quota for one more run and counts it; the refusal (nothing counted), or null
    /// when the run is counted. The subscription's row lock makes check-and-count serial per org, across every instance
    /// sharing the database.
    /// </summary>
    private static async Task<AdmissionOutcome?> CountAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, OrgSlug org, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var subscription = await connection.QuerySingleOrDefaultAsync<SubscriptionRow<DateTime?>>(new CommandDefinition(
            "SELECT * FROM org_subscriptions WHERE org_slug = @org FOR UPDATE", new { org = org.Value }, transaction, cancellationToken: cancellationToken));
        if (subscription is null)
        {
            return new AdmissionOutcome.SubscriptionInactive($"Organization '{org}' has no subscription.");
        }

        var record = subscription.ToRecord(PostgresRowValues.Timestamp);
        if (!QuotaCalendar.IsUsable(record, now, out var reason))
        {
            return new AdmissionOutcome.SubscriptionInactive(reason);
        }

        var start = DateOnly.FromDateTime(record.SubscriptionStart.UtcDateTime);
        var usage = await EnsureTodayAsync(connection, transaction, org.Value, start, now, cancellationToken);
        if (QuotaRules.Exceeded(record, start, usage.Today, usage.Month, now) is { } limit)
        {
            return new AdmissionOutcome.OverQuota(limit);
        }

        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_usage_quotas SET pipelines_run_today = pipelines_run_today + 1, pipelines_run_month = pipelines_run_month + 1
            WHERE org_slug = @org AND usage_date = @date
            """,
            new { org = org.Value, date = PostgresValues.Date(QuotaCalendar.UsageDate(now)) },
            transaction,
            cancellationToken: cancellationToken));
        return null;
    }

    private static async Task<(int Today, int Month, bool Created)> EnsureTodayAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string org, DateOnly subscriptionStart, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var today = QuotaCalendar.UsageDate(now);
        var monthStart = QuotaCalendar.MonthStart(subscriptionStart, today);
        var created = await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_usage_quotas (org_slug, usage_date, pipelines_run_today, pipelines_run_month, concurrent_running, last_reset_daily, last_reset_monthly)
            SELECT @org, @date, 0, COALESCE(SUM(pipelines_run_today), 0), 0, @daily, @monthly
            FROM org_usage_quotas WHERE org_slug = @org AND usage_date >= @start AND usage_date < @date
            ON CONFLICT (org_slug, usage_date) DO NOTHING
            """,
            new
            {
                org, date = PostgresValues.Date(today), start = PostgresValues.Date(monthStart),
                daily = PostgresValues.Timestamp(new DateTimeOffset(today.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)),
                monthly = PostgresValues.Timestamp(new DateTimeOffset(monthStart.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)),
            },
            transaction,
            cancellationToken: cancellationToken)) == 1;
        var row = await connection.QuerySingleAsync<(long Today, long Month)>(new CommandDefinition(
            "SELECT pipelines_run_today, pipelines_run_month FROM org_usage_quotas WHERE org_slug = @org AND usage_date = @date",
            new { org, date = PostgresValues.Date(today) },
            transaction,
            cancellationToken: cancellationToken));
        return ((int)row.Today, (int)row.Month, created);
    }

    /// <summary>Sets the org's <c>concurrent_running</c> on its latest quota row to its live leases (<c>@org</c>, <c>@at</c>).</summary>
    private const string RecountSql =
        $"""
        UPDATE org_usage_quotas SET concurrent_running = (SELECT COUNT(*) FROM org_pipeline_execution_queue
            WHERE org_slug = @org AND status IN {Active} AND lease_expires_at > @at)
        WHERE org_slug = @org AND usage_date = (SELECT MAX(usage_date) FROM org_usage_quotas WHERE org_slug = @org)
        """;

    private static Task RecountRunningAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string org, DateTimeOffset now, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(RecountSql, new { org, at = PostgresValues.Timestamp(now) }, transaction, cancellationToken: cancellationToken));

    private static Task SetEntryAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string queueId, string status, string error, DateTime? at, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_pipeline_execution_queue SET status = @status, last_error = @error, lease_expires_at = NULL, updated_at = @at WHERE queue_id = @queueId",
            new { queueId, status, error, at },
            transaction,
            cancellationToken: cancellationToken));

    private static Task CloseStepsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string run, string reason, DateTime? at, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_meta_step_logs SET status = CASE status WHEN 'RUNNING' THEN 'FAILED' ELSE 'SKIPPED' END, end_time = @at,
                error_class = CASE status WHEN 'RUNNING' THEN 'LeaseExpired' ELSE NULL END, error_message = CASE status WHEN 'RUNNING' THEN @reason ELSE NULL END
            WHERE pipeline_logging_id = @run AND status IN ('PENDING', 'RUNNING')
            """,
            new { run, reason, at },
            transaction,
            cancellationToken: cancellationToken));

#pragma warning disable IDE1006, SA1300 // Row classes mirror the snake_case columns they are read from.
    private sealed class CandidateRow
    {
        public string? queue_id { get; set; }
        public string? org_slug { get; set; }
    }
#pragma warning restore IDE1006, SA1300
}
