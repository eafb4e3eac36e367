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

    /// <summary>The columns <see cref="InsertRunsAndEntriesAsync"/> fills; the lease and error columns start NULL.</summary>
    private static readonly string[] QueueEntryColumns =
    [
        "queue_id", "org_slug", "pipeline", "parameters", "priority", "status", "scheduled_for", "attempts", "max_attempts", "idempotency_key",
        "pipeline_logging_id", "created_at", "updated_at",
    ];

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
        var candidate = await connection.QuerySingleOrDefaultAsync<ClaimRow<string?>>(new CommandDefinition(
            $"""
            SELECT q.queue_id, q.org_slug, q.pipeline_logging_id, q.attempts, q.pipeline, q.parameters, q.scheduled_for, q.created_at FROM org_pipeline_execution_queue q
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
        return new QueueLease(candidate.queue_id, OrgSlug.From(candidate.org_slug), candidate.pipeline_logging_id, owner, token, attempt, expires, candidate.Deferred(SqliteRowValues.Timestamp));
    }

    public async Task<bool> StartAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        if (await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE org_pipeline_execution_queue SET status = 'RUNNING', updated_at = @at WHERE queue_id = @QueueId AND lease_token = @Token AND status = 'CLAIMED'",
                new { lease.QueueId, lease.Token, at = SqliteSchema.Timestamp(now) },
                transaction,
                cancellationToken: cancellationToken)) != 1)
        {
            return false;
        }

        await SqliteControlPlaneStore.SaveRunAsync(connection, transaction, run, steps, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return true;
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
        var done = await CloseAsync(connection, transaction, lease, status, error, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return done;
    }

    public async Task<bool> FinishAsync(QueueLease lease, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var done = await CloseAsync(connection, transaction, lease, run.Status, run.ErrorMessage, now, cancellationToken);
        await SqliteControlPlaneStore.SaveRunAsync(connection, transaction, run, steps, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return done;
    }

    /// <summary>Closes an entry under its lease with a final status, and recounts the org's live leases if it did; false when the lease was lost.</summary>
    private static async Task<bool> CloseAsync(
        SqliteConnection connection, SqliteTransaction transaction, QueueLease lease, string status, string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var done = await connection.ExecuteAsync(new CommandDefinition(
            $"""
            UPDATE org_pipeline_execution_queue SET status = @status, last_error = COALESCE(@error, last_error), lease_expires_at = NULL, updated_at = @at
            WHERE queue_id = @QueueId AND lease_token = @Token AND status IN {Active}
            """,
            new { lease.QueueId, lease.Token, status, error, at = SqliteSchema.Timestamp(now) },
            transaction,
            cancellationToken: cancellationToken)) == 1;
        if (done)
        {
            await RecountRunningAsync(connection, transaction, lease.Org.Value, now, cancellationToken);
        }

        return done;
    }

    public async Task<RescueOutcome> RescueExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var at = SqliteSchema.Timestamp(now);
        var expired = (await connection.QueryAsync<ExpiredRow<string?>>(new CommandDefinition(
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

    /// <summary>Builds the batch's JSON rows (see <see cref="TickValues"/>) before any lock is taken.</summary>
    public TickBatch PrepareTicks(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now) => new SqliteTickBatch(ticks, now, SqliteJsonRows.Serialize(ticks.Select(TickValues)));

    /// <remarks>
    /// Set-based: each step is one statement over the whole batch (rows passed as JSON, see <see cref="SqliteJsonRows"/>),
    /// inside one transaction that holds SQLite's write lock, so the org counters read in step 3 cannot change under it.
    /// A tick writes two rows: its schedule's advance and its queue entry (no tick row, no run row: the entry is the
    /// tick's record and the run row is created at claim).
    /// </remarks>
    public async Task<IReadOnlyList<TickOutcome>> EnqueueTicksAsync(TickBatch batch, CancellationToken cancellationToken)
    {
        if (batch.Ticks.Count == 0)
        {
            return [];
        }

        var rows = batch is SqliteTickBatch prepared ? prepared.Rows : SqliteJsonRows.Serialize(batch.Ticks.Select(TickValues));
        return await WriteTicksAsync(batch.Ticks, rows, SqliteSchema.Timestamp(batch.Now), batch.Now, cancellationToken);
    }

    private async Task<IReadOnlyList<TickOutcome>> WriteTicksAsync(IReadOnlyList<ScheduledTick> ticks, string rows, string? at, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        using var statements = new Statements(connection, transaction);

        // 1. Advance each schedule from the next_run_time the trigger read (compare-and-swap); the others are stale. The
        // unary plus keeps SQLite from walking the (is_active, next_run_time) index for every JSON row: the batch is the
        // outer loop and each schedule is found by its primary key.
        var advanced = (await statements.QueryAsync(
            """
            UPDATE org_pipeline_configs AS c SET next_run_time = j.value ->> 3, last_run_time = j.value ->> 4, updated_at = @at
            FROM json_each(@rows) AS j
            WHERE c.config_id = j.value ->> 0 AND c.org_slug = j.value ->> 1 AND +c.is_active = 1 AND +c.next_run_time = j.value ->> 2
            RETURNING config_id
            """,
            reader => reader.GetString(0),
            cancellationToken,
            ("at", at),
            ("rows", rows))).ToHashSet(StringComparer.Ordinal);

        // 2. Each advanced tick's entry, once per (org, pipeline, scheduled_for) (its idempotency key), QUEUED; the rare
        // skip rewrites it in step 4.
        var pending = ticks.Where(t => advanced.Contains(t.ConfigId)).ToList();
        var recorded = pending.Count == 0 ? [] : (await statements.QueryAsync(
            $"""
            INSERT INTO org_pipeline_execution_queue (queue_id, org_slug, pipeline, parameters, priority, status, scheduled_for, attempts, max_attempts,
                idempotency_key, pipeline_logging_id, last_error, created_at, updated_at)
            SELECT j.value ->> 5, j.value ->> 1, j.value ->> 6, j.value -> 7, {QueuePriority.Scheduled}, 'QUEUED', j.value ->> 4, 0, j.value ->> 8,
                j.value ->> 9, j.value ->> 5, j.value ->> 10, @at, @at
            FROM json_each(@rows) AS j WHERE true
            ON CONFLICT (org_slug, idempotency_key) DO NOTHING
            RETURNING queue_id
            """,
            reader => reader.GetString(0),
            cancellationToken,
            ("at", at),
            ("rows", pending.Count == ticks.Count ? rows : SqliteJsonRows.Serialize(pending.Select(TickValues))))).ToHashSet(StringComparer.Ordinal);

        // 3. The quota state of every org with a recorded tick, read once and counted in memory, in tick order.
        var counters = await LoadCountersAsync(
            statements, pending.Where(t => recorded.Contains(t.RunId)).Select(t => t.Org.Value).Distinct(StringComparer.Ordinal).ToList(), now, cancellationToken);
        var outcomes = new List<TickOutcome>(ticks.Count);
        var skipped = new List<object?[]>();
        var queued = 0;
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
                skipped.Add([tick.RunId, refusal]);
                outcomes.Add(Outcome(TickStatus.Skipped, reason: refusal));
            }
            else
            {
                counters[tick.Org.Value].Count();
                queued++;
                outcomes.Add(Outcome(TickStatus.Queued, tick.RunId));
            }
        }

        if (queued > 0)
        {
            await AddCountedRunsAsync(statements, counters, now, cancellationToken);
        }

        // 4. The skipped ticks keep their entry, SKIPPED with the reason and no run.
        if (skipped.Count > 0)
        {
            await statements.ExecuteAsync(
                """
                UPDATE org_pipeline_execution_queue AS q SET status = 'SKIPPED', pipeline_logging_id = NULL, last_error = j.value ->> 1
                FROM json_each(@rows) AS j WHERE q.queue_id = j.value ->> 0
                """,
                cancellationToken,
                ("rows", SqliteJsonRows.Serialize(skipped)));
        }

        await transaction.CommitAsync(cancellationToken);
        return outcomes;
    }

    /// <summary>
    /// A tick as one JSON row of <see cref="EnqueueTicksAsync"/>: config_id, org, expected and next next_run_time,
    /// scheduled_for (0–4, the schedule's advance), then the entry's queue_id (= the run's id), pipeline, parameters (a
    /// JSON object), max_attempts, idempotency key and catch-up note (5–10).
    /// </summary>
    private static object?[] TickValues(ScheduledTick t) =>
    [
        t.ConfigId, t.Org.Value, SqliteSchema.Timestamp(t.ExpectedNextRunTime), SqliteSchema.Timestamp(t.NextRunTime), SqliteSchema.Timestamp(t.ScheduledFor),
        t.RunId, t.Pipeline, t.Parameters, t.MaxAttempts, t.QueueKey, t.CatchUpNote,
    ];

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
        using var statements = new Statements(connection, transaction);
        var usage = await EnsureTodayAsync(
            statements,
            subscriptions.ToDictionary(s => s.Org, s => DateOnly.FromDateTime(SqliteSchema.ParseTimestamp(s.Start).UtcDateTime), StringComparer.Ordinal),
            now,
            cancellationToken);
        var reset = usage.Values.Count(u => u.Created);

        var purgeTimestamp = SqliteSchema.Timestamp(new DateTimeOffset(purgeBefore.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero));
        var quotaRows = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_usage_quotas WHERE usage_date < @date", new { date = Date(purgeBefore) }, transaction, cancellationToken: cancellationToken));
        var entries = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_pipeline_execution_queue WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED') AND updated_at < @ts",
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
            var counters = (await LoadCountersAsync(statements, [org.Value], admission.Now, cancellationToken))[org.Value];
            if (counters.Inactive is { } inactive)
            {
                return new AdmissionOutcome.SubscriptionInactive(inactive);
            }

            if (counters.Exceeded() is { } limit)
            {
                return new AdmissionOutcome.OverQuota(limit);
            }

            counters.Count();
            await AddCountedRunsAsync(statements, new() { [org.Value] = counters }, admission.Now, cancellationToken);
        }

        var queueId = Guid.CreateVersion7(admission.Now).ToString();
        try
        {
            await InsertRunsAndEntriesAsync(statements, [new QueueEntry(admission, queueId, queueKey)], cancellationToken);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
        {
            return new AdmissionOutcome.DuplicateKey();
        }

        return new AdmissionOutcome.Admitted(queueId, admission.Run.PipelineLoggingId);
    }

    /// <summary>Adds the runs counted in memory to today's daily and monthly counters of their orgs.</summary>
    private static Task AddCountedRunsAsync(Statements statements, Dictionary<string, OrgQuotaCounters> counters, DateTimeOffset now, CancellationToken cancellationToken) =>
        statements.ExecuteAsync(
            """
            UPDATE org_usage_quotas AS u SET pipelines_run_today = u.pipelines_run_today + (j.value ->> 1), pipelines_run_month = u.pipelines_run_month + (j.value ->> 1)
            FROM json_each(@rows) AS j
            WHERE u.org_slug = j.value ->> 0 AND u.usage_date = @date
            """,
            cancellationToken,
            ("date", Date(QuotaCalendar.UsageDate(now))),
            ("rows", SqliteJsonRows.Serialize(counters.Where(c => c.Value.Added > 0).Select(c => new object?[] { c.Key, c.Value.Added }))));

    /// <summary>
    /// The PENDING run rows and their QUEUED entries, one statement each; a unique key already taken throws (SQLite
    /// error 19) and the caller rolls back.
    /// </summary>
    private static async Task InsertRunsAndEntriesAsync(Statements statements, IReadOnlyList<QueueEntry> entries, CancellationToken cancellationToken)
    {
        await statements.ExecuteAsync(
            SqliteControlPlaneStore.InsertRunsFromJsonSql,
            cancellationToken,
            ("rows", SqliteJsonRows.Serialize(entries.Select(e => SqliteControlPlaneStore.RunValues(e.Admission.Run)))));
        await statements.ExecuteAsync(
            $"INSERT INTO org_pipeline_execution_queue ({string.Join(", ", QueueEntryColumns)}) SELECT {SqliteJsonRows.Columns(QueueEntryColumns.Length)} FROM json_each(@rows) AS j",
            cancellationToken,
            ("rows", SqliteJsonRows.Serialize(entries.Select(e => new object?[]
            {
                e.QueueId, e.Admission.Org.Value, e.Admission.Run.PipelinePath, JsonSerializer.Serialize(e.Admission.Run.Parameters), e.Admission.Priority,
                QueueStatus.Queued, SqliteSchema.Timestamp(e.Admission.ScheduledFor), 0, e.Admission.MaxAttempts, e.QueueKey, e.Admission.Run.PipelineLoggingId,
                SqliteSchema.Timestamp(e.Admission.Now), SqliteSchema.Timestamp(e.Admission.Now),
            }))));
    }

    /// <summary>
    /// The subscription and today's counters of each org (read once per batch and then counted in memory), creating
    /// today's counter rows where missing.
    /// </summary>
    private static async Task<Dictionary<string, OrgQuotaCounters>> LoadCountersAsync(Statements statements, IReadOnlyList<string> orgs, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var counters = new Dictionary<string, OrgQuotaCounters>(StringComparer.Ordinal);
        if (orgs.Count == 0)
        {
            return counters;
        }

        var subscriptions = (await statements.QueryAsync(
            """
            SELECT org_slug, plan_name, status, daily_limit, monthly_limit, concurrent_limit, trial_ends_at, subscription_start, updated_at
            FROM org_subscriptions WHERE org_slug IN (SELECT value FROM json_each(@orgs))
            """,
            reader => new SubscriptionRow<string?>
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
            }.ToRecord(SqliteRowValues.Timestamp),
            cancellationToken,
            ("orgs", SqliteJsonRows.SerializeValues(orgs)))).ToDictionary(s => s.OrgSlug.Value, StringComparer.Ordinal);
        var usable = OrgQuotaCounters.Usable(orgs, subscriptions, now, counters);

        foreach (var (org, usage) in await EnsureTodayAsync(statements, usable, now, cancellationToken))
        {
            counters[org] = new OrgQuotaCounters(subscriptions[org], null, usable[org], usage.Today, usage.Month, now);
        }

        return counters;
    }

    /// <summary>
    /// Today's counters of each org, creating today's row where missing: 0 runs today and, for the month, the runs of
    /// the earlier days of the org's current billing month (which starts on its subscription anniversary).
    /// </summary>
    private static async Task<Dictionary<string, (int Today, int Month, bool Created)>> EnsureTodayAsync(
        Statements statements, IReadOnlyDictionary<string, DateOnly> subscriptionStarts, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var today = QuotaCalendar.UsageDate(now);
        var date = Date(today);
        if (subscriptionStarts.Count == 0)
        {
            return [];
        }

        var usage = (await statements.QueryAsync(
            "SELECT org_slug, pipelines_run_today, pipelines_run_month FROM org_usage_quotas WHERE usage_date = @date AND org_slug IN (SELECT value FROM json_each(@orgs))",
            reader => (Org: reader.GetString(0), Today: (int)reader.GetInt64(1), Month: (int)reader.GetInt64(2)),
            cancellationToken,
            ("date", date),
            ("orgs", SqliteJsonRows.SerializeValues(subscriptionStarts.Keys)))).ToDictionary(r => r.Org, r => (r.Today, r.Month, Created: false), StringComparer.Ordinal);
        var missing = subscriptionStarts.Where(s => !usage.ContainsKey(s.Key))
            .ToDictionary(s => s.Key, s => QuotaCalendar.MonthStart(s.Value, today), StringComparer.Ordinal);
        if (missing.Count == 0)
        {
            return usage;
        }

        var month = missing.Keys.ToDictionary(org => org, _ => 0L, StringComparer.Ordinal);
        foreach (var (org, day, runs) in await statements.QueryAsync(
            "SELECT org_slug, usage_date, pipelines_run_today FROM org_usage_quotas WHERE org_slug IN (SELECT value FROM json_each(@orgs)) AND usage_date >= @from AND usage_date < @date",
            reader => (reader.GetString(0), reader.GetString(1), reader.GetInt64(2)),
            cancellationToken,
            ("orgs", SqliteJsonRows.SerializeValues(missing.Keys)),
            ("from", Date(missing.Values.Min())),
            ("date", date)))
        {
            if (string.CompareOrdinal(day, Date(missing[org])) >= 0)
            {
                month[org] += runs;
            }
        }

        await statements.ExecuteAsync(
            """
            INSERT INTO org_usage_quotas (org_slug, usage_date, pipelines_run_today, pipelines_run_month, concurrent_running, last_reset_daily, last_reset_monthly)
            SELECT j.value ->> 0, @date, 0, j.value ->> 1, 0, @daily, j.value ->> 2 FROM json_each(@rows) AS j
            """,
            cancellationToken,
            ("date", date),
            ("daily", SqliteSchema.Timestamp(new DateTimeOffset(today.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero))),
            ("rows", SqliteJsonRows.Serialize(missing.Select(m => new object?[]
            {
                m.Key, month[m.Key], SqliteSchema.Timestamp(new DateTimeOffset(m.Value.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)),
            }))));
        foreach (var org in missing.Keys)
        {
            usage[org] = (0, (int)month[org], true);
        }

        return usage;
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

        /// <summary>Runs a query (or a statement with RETURNING) and reads every row.</summary>
        public Task<List<T>> QueryAsync<T>(
            string sql, Func<SqliteDataReader, T> read, CancellationToken cancellationToken, params ReadOnlySpan<(string Name, object? Value)> values) =>
            ReadAllAsync(Bind(sql, values), read, cancellationToken);

        private static async Task<List<T>> ReadAllAsync<T>(SqliteCommand command, Func<SqliteDataReader, T> read, CancellationToken cancellationToken)
        {
            var rows = new List<T>();
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add(read(reader));
            }

            return rows;
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

    /// <summary>A batch with its JSON rows built.</summary>
    private sealed class SqliteTickBatch(IReadOnlyList<ScheduledTick> ticks, DateTimeOffset now, string rows) : TickBatch(ticks, now)
    {
        public string Rows => rows;
    }

    /// <summary>A run to insert with its queue entry.</summary>
    private sealed record QueueEntry(RunAdmission Admission, string QueueId, string? QueueKey);
}
