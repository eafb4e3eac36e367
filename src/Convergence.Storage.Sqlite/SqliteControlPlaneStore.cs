using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Integrations;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>The embedded control plane: the central <c>organizations</c> dataset in one SQLite file.</summary>
internal sealed class SqliteControlPlaneStore : IControlPlaneStore
{
    /// <summary>Tables this store reads and writes; bootstrap must have created all of them.</summary>
    internal static readonly string[] RequiredTables =
    [
        "org_profiles", "org_api_keys", "org_subscriptions", "org_usage_quotas", "org_integration_credentials",
        "org_pipeline_configs", "org_scheduled_pipeline_runs", "org_pipeline_execution_queue", "org_meta_pipeline_runs",
        "org_meta_step_logs", "org_meta_dq_results", "org_audit_logs",
    ];

    private readonly SqliteDatasetFiles _files;
    private readonly SemaphoreSlim _bootstrapGate = new(1, 1);
    private volatile bool _bootstrapped;

    static SqliteControlPlaneStore() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    public SqliteControlPlaneStore(SqliteDatasetFiles files) => _files = files;

    public string Kind => "sqlite";

    public async Task<BootstrapOutcome> BootstrapAsync(IReadOnlyList<TableSchema> tables, BootstrapOptions options, CancellationToken cancellationToken)
    {
        var missing = RequiredTables.Except(tables.Select(t => t.Name)).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException($"The bootstrap schemas lack tables the control plane needs: {string.Join(", ", missing)}.");
        }

        await _bootstrapGate.WaitAsync(cancellationToken);
        try
        {
            _bootstrapped = false;
            var central = DatasetRef.Central;
            if (options.ForceRecreateDataset)
            {
                _files.Delete(central);
            }

            var datasetCreated = !File.Exists(_files.PathOf(central));
            await using var connection = await _files.OpenAsync(central, cancellationToken, SqliteOpenMode.ReadWriteCreate);
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            var created = new List<string>();
            var existing = new List<string>();
            foreach (var table in tables)
            {
                var exists = await SqliteWarehouse.TableExistsAsync(connection, transaction, table.Name, cancellationToken);
                if (exists && options.ForceRecreateTables)
                {
                    await connection.ExecuteAsync(new CommandDefinition($"DROP TABLE {SqliteSchema.Quote(table.Name)}", transaction: transaction, cancellationToken: cancellationToken));
                    exists = false;
                }

                if (exists)
                {
                    existing.Add(table.Name);
                    continue;
                }

                foreach (var statement in SqliteSchema.CreateStatements(table))
                {
                    await connection.ExecuteAsync(new CommandDefinition(statement, transaction: transaction, cancellationToken: cancellationToken));
                }

                created.Add(table.Name);
            }

            await transaction.CommitAsync(cancellationToken);
            _bootstrapped = true;
            return new BootstrapOutcome(datasetCreated, created, existing);
        }
        finally
        {
            _bootstrapGate.Release();
        }
    }

    public async Task<bool> IsBootstrappedAsync(CancellationToken cancellationToken)
    {
        if (_bootstrapped)
        {
            return true;
        }

        if (!File.Exists(_files.PathOf(DatasetRef.Central)))
        {
            return false;
        }

        await using var connection = await OpenAsync(cancellationToken);
        var count = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN @RequiredTables", new { RequiredTables }, cancellationToken: cancellationToken));
        _bootstrapped = count == RequiredTables.Length;
        return _bootstrapped;
    }

    public async Task<bool> IsReachableAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(_files.PathOf(DatasetRef.Central)))
        {
            // Nothing to reach yet, but the folder must be usable for bootstrap to create it.
            return Directory.Exists(_files.DatasetsDirectory);
        }

        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT 1", cancellationToken: cancellationToken)) == 1;
    }

    public async Task<IControlPlaneTransaction> BeginTransactionAsync(CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken);
        try
        {
            var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            return new SqliteControlPlaneTransaction(connection, transaction);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task<OrgProfile?> FindOrganizationAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ProfileRow<string?>>(new CommandDefinition(
            "SELECT * FROM org_profiles WHERE org_slug = @org", new { org = org.Value }, cancellationToken: cancellationToken));
        return row?.ToRecord(SqliteRowValues.Timestamp);
    }

    public async Task<OrgOverview?> GetOrganizationOverviewAsync(OrgSlug org, DateOnly usageDate, CancellationToken cancellationToken)
    {
        // One round trip: this read sits behind every authenticated GET of an org.
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ProfileRow<string?>, SubscriptionRow<string?>, QuotaRow<string?>, OrgOverview>(
            new CommandDefinition(
                """
                SELECT p.org_slug, p.company_name, p.admin_email, p.status, p.subscription_plan, p.dataset_id, p.created_at, p.updated_at,
                       s.plan_name, s.org_slug, s.status, s.daily_limit, s.monthly_limit, s.concurrent_limit, s.trial_ends_at, s.subscription_start, s.updated_at,
                       q.usage_date, q.org_slug, q.pipelines_run_today, q.pipelines_run_month, q.concurrent_running, q.last_reset_daily, q.last_reset_monthly
                FROM org_profiles p
                LEFT JOIN org_subscriptions s ON s.org_slug = p.org_slug
                LEFT JOIN (SELECT * FROM org_usage_quotas WHERE org_slug = @org ORDER BY usage_date DESC LIMIT 1) q ON q.org_slug = p.org_slug
                WHERE p.org_slug = @org
                """,
                new { org = org.Value },
                cancellationToken: cancellationToken),
            (profile, subscription, quota) => new OrgOverview(
                profile.ToRecord(SqliteRowValues.Timestamp), subscription?.ToRecord(SqliteRowValues.Timestamp), quota?.ToRecord(usageDate, SqliteRowValues.Timestamp)),
            splitOn: "plan_name,usage_date");
        return rows.SingleOrDefault();
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ApiKeyRow<string?, long>>(new CommandDefinition(
            "SELECT * FROM org_api_keys WHERE org_slug = @org ORDER BY created_at", new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag))];
    }

    public async Task<ApiKeyLookup?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ApiKeyLookupRow<string?, long>>(new CommandDefinition(
            "SELECT k.*, p.status AS org_status FROM org_api_keys k JOIN org_profiles p ON p.org_slug = k.org_slug WHERE k.org_api_key_hash = @keyHash",
            new { keyHash }, cancellationToken: cancellationToken));
        return row is null ? null : new ApiKeyLookup(row.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag), row.org_status);
    }

    public async Task TouchApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_api_keys SET last_used_at = @at WHERE org_slug = @org AND org_api_key_id = @keyId",
            new { org = org.Value, keyId, at = SqliteSchema.Timestamp(at) }, cancellationToken: cancellationToken));
    }

    public async Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await SqliteControlPlaneTransaction.InsertAuditAsync(connection, null, entry, cancellationToken);
    }

    public async Task<IReadOnlyList<AuditEntry>> ListAuditAsync(OrgSlug org, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<AuditRow<string?>>(new CommandDefinition(
            "SELECT * FROM org_audit_logs WHERE org_slug = @org ORDER BY occurred_at DESC, audit_id DESC LIMIT @limit",
            new { org = org.Value, limit }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(SqliteRowValues.Timestamp))];
    }

    /// <summary>
    /// The run and its steps in one transaction: a reader never sees the run finished with its steps not yet saved (the
    /// executor saves the last step only with the run).
    /// </summary>
    public async Task SaveRunAsync(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        await SaveRunAsync(connection, transaction, run, steps, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Upserts a run row and then its step rows in the caller's transaction (the run queue's start writes them with its entry).</summary>
    internal static async Task SaveRunAsync(
        SqliteConnection connection, SqliteTransaction transaction, PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken)
    {
        await connection.ExecuteAsync(new CommandDefinition(InsertRunSql + RunRows.UpsertClause, RunArgs(run), transaction, cancellationToken: cancellationToken));
        foreach (var step in steps)
        {
            await connection.ExecuteAsync(new CommandDefinition(SaveStepSql, StepArgs(step), transaction, cancellationToken: cancellationToken));
        }
    }

    public async Task SaveRunAsync(PipelineRunRecord run, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            InsertRunSql + RunRows.UpsertClause,
            RunArgs(run),
            cancellationToken: cancellationToken));
    }

    /// <summary>Inserts a run row from <see cref="RunArgs"/>; a second run with the org's idempotency key violates a unique key.</summary>
    internal static readonly string InsertRunSql =
        $"INSERT INTO org_meta_pipeline_runs ({string.Join(", ", RunRows.Columns.Select(SqliteSchema.Quote))}) VALUES ({string.Join(", ", RunRows.Columns.Select(c => "@" + c))})";

    /// <summary>Inserts the run rows of a JSON array of <see cref="RunValues"/> arrays bound to <c>@rows</c> (see <see cref="SqliteJsonRows"/>).</summary>
    internal static readonly string InsertRunsFromJsonSql =
        $"INSERT INTO org_meta_pipeline_runs ({string.Join(", ", RunRows.Columns.Select(SqliteSchema.Quote))}) SELECT {SqliteJsonRows.Columns(RunRows.Columns.Count)} FROM json_each(@rows) AS j";

    internal static DynamicParameters RunArgs(PipelineRunRecord run)
    {
        var args = new DynamicParameters();
        foreach (var (name, value) in RunParameters(run))
        {
            args.Add(name, value);
        }

        return args;
    }

    /// <summary>The parameters of <see cref="InsertRunSql"/> for <paramref name="run"/>, by name (without the <c>@</c>).</summary>
    internal static (string Name, object? Value)[] RunParameters(PipelineRunRecord run) => [.. RunRows.Columns.Zip(RunValues(run))];

    /// <summary>The values of <paramref name="run"/>'s row, in the order of <see cref="RunRows.Columns"/>.</summary>
    internal static object?[] RunValues(PipelineRunRecord run) => RunRows.Values(run, t => SqliteSchema.Timestamp(t));

    public async Task CreateRunAsync(PipelineRunRecord run, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(InsertRunSql, RunArgs(run), cancellationToken: cancellationToken));
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
        {
            throw new DuplicateRowException("org_meta_pipeline_runs", ex);
        }
    }

    public async Task ReplaceCredentialAsync(IntegrationCredential c, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var now = SqliteSchema.Timestamp(c.UpdatedAt);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_integration_credentials SET is_active = 0, encrypted_credential = '', updated_at = @now WHERE org_slug = @org AND provider = @provider AND is_active = 1",
            new { org = c.OrgSlug.Value, provider = c.Provider.StoredName, now }, transaction, cancellationToken: cancellationToken));
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_integration_credentials (credential_id, org_slug, provider, credential_name, encrypted_credential, key_version,
                validation_status, last_validated_at, last_error, metadata, is_active, created_at, updated_at)
            VALUES (@CredentialId, @org, @provider, @CredentialName, @EncryptedCredential, @KeyVersion,
                @ValidationStatus, @validated, @LastError, @metadata, 1, @created, @now)
            """,
            new
            {
                c.CredentialId, org = c.OrgSlug.Value, provider = c.Provider.StoredName, c.CredentialName, c.EncryptedCredential, c.KeyVersion,
                c.ValidationStatus, validated = SqliteSchema.Timestamp(c.LastValidatedAt), c.LastError, metadata = JsonSerializer.Serialize(c.Metadata),
                created = SqliteSchema.Timestamp(c.CreatedAt), now,
            },
            transaction,
            cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<IntegrationCredential?> FindActiveCredentialAsync(OrgSlug org, IntegrationProvider provider, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<CredentialRow<string?, long>>(new CommandDefinition(
            "SELECT * FROM org_integration_credentials WHERE org_slug = @org AND provider = @provider AND is_active = 1",
            new { org = org.Value, provider = provider.StoredName }, cancellationToken: cancellationToken));
        return row?.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag);
    }

    public async Task<IReadOnlyList<IntegrationCredential>> ListActiveCredentialsAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<CredentialRow<string?, long>>(new CommandDefinition(
            "SELECT * FROM org_integration_credentials WHERE org_slug = @org AND is_active = 1 ORDER BY provider",
            new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag))];
    }

    public async Task<bool> UpdateCredentialValidationAsync(OrgSlug org, string credentialId, string status, string? lastError, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_integration_credentials SET validation_status = @status, last_error = @lastError, last_validated_at = @at, updated_at = @at
            WHERE org_slug = @org AND credential_id = @credentialId AND is_active = 1
            """,
            new { org = org.Value, credentialId, status, lastError, at = SqliteSchema.Timestamp(at) }, cancellationToken: cancellationToken)) > 0;
    }

    public async Task<bool> DeactivateCredentialAsync(OrgSlug org, IntegrationProvider provider, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_integration_credentials SET is_active = 0, encrypted_credential = '', updated_at = @at WHERE org_slug = @org AND provider = @provider AND is_active = 1",
            new { org = org.Value, provider = provider.StoredName, at = SqliteSchema.Timestamp(at) }, cancellationToken: cancellationToken)) > 0;
    }

    public async Task<IReadOnlyList<StoredCiphertext>> ListCiphertextsAsync(CiphertextTable table, string? afterRecordId, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        var (name, id, column, provider) = CiphertextColumns(table);
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<(string Id, string Org, string? Provider, string Ciphertext)>(new CommandDefinition(
            // Erased ciphertexts (deleted or replaced credentials) hold nothing to re-wrap.
            $"SELECT {id}, org_slug, {provider}, {column} FROM {name} WHERE (@after IS NULL OR {id} > @after) AND {column} <> '' ORDER BY {id} LIMIT @limit",
            new { after = afterRecordId, limit }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => new StoredCiphertext(table, r.Id, OrgSlug.From(r.Org), r.Provider, r.Ciphertext))];
    }

    public async Task<bool> ReplaceCiphertextAsync(CiphertextTable table, string recordId, string expected, string replacement, CancellationToken cancellationToken)
    {
        var (name, id, column, _) = CiphertextColumns(table);
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            $"UPDATE {name} SET {column} = @replacement WHERE {id} = @recordId AND {column} = @expected",
            new { recordId, expected, replacement }, cancellationToken: cancellationToken)) > 0;
    }

    private static (string Table, string Id, string Column, string Provider) CiphertextColumns(CiphertextTable table) => table switch
    {
        CiphertextTable.IntegrationCredentials => ("org_integration_credentials", "credential_id", "encrypted_credential", "provider"),
        CiphertextTable.OrgApiKeys => ("org_api_keys", "org_api_key_id", "encrypted_org_api_key", "NULL"),
        _ => throw new ArgumentOutOfRangeException(nameof(table), table, "not a ciphertext table"),
    };

    /// <summary>The run table's columns, which <see cref="DeferredRunsSql"/> also selects (besides queue_id).</summary>
    private static readonly string FoundRunColumns = string.Join(", ", RunRows.Columns.Append("cancel_requested_at").Select(SqliteSchema.Quote));

    public async Task<PipelineRunRecord?> FindRunAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken)
    {
        // The run row or, for a scheduled run whose claiming worker has not created it yet, its queue entry (whose queue_id
        // is the run's id), in one statement (one snapshot): two reads could miss the run in between.
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<RunRow<string?>>(new CommandDefinition(
            $"""
            SELECT {FoundRunColumns} FROM org_meta_pipeline_runs WHERE pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR org_slug = @org)
            UNION ALL
            SELECT {FoundRunColumns} FROM ({DeferredRunsSql})
            WHERE queue_id = @pipelineLoggingId AND pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR org_slug = @org)
            """,
            new { pipelineLoggingId, org = org?.Value }, cancellationToken: cancellationToken));
        return row?.ToRecord(SqliteRowValues.Timestamp);
    }

    /// <summary>
    /// The run row of a scheduled run claimed by a worker that has not created it yet (<c>@pipelineLoggingId</c>,
    /// <c>@org</c>, <c>@at</c>), created here PENDING with the cancel request: the worker's own insert then finds it, and
    /// the worker cancels the run before it starts. When the worker created it first, only the request is added.
    /// </summary>
    private const string CancelClaimedDeferredSql =
        """
        INSERT INTO org_meta_pipeline_runs (pipeline_logging_id, org_slug, pipeline_id, pipeline_path, "trigger", triggered_by, status, parameters,
            attempt, worker_id, created_at, cancel_requested_at)
        SELECT q.pipeline_logging_id, q.org_slug, q.pipeline, q.pipeline, 'SCHEDULER', 'scheduler', 'PENDING', q.parameters,
            MAX(q.attempts, 1), q.lease_owner, q.created_at, @at
        FROM org_pipeline_execution_queue q
        WHERE q.queue_id = @pipelineLoggingId AND q.pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR q.org_slug = @org)
          AND q.scheduled_for IS NOT NULL AND q.status IN ('CLAIMED', 'RUNNING')
        ON CONFLICT (pipeline_logging_id) DO UPDATE SET cancel_requested_at = COALESCE(org_meta_pipeline_runs.cancel_requested_at, excluded.cancel_requested_at)
        WHERE org_meta_pipeline_runs.status IN ('PENDING', 'RUNNING')
        """;

    /// <summary>Cancels the QUEUED entry of a scheduled run that has no run row (<c>@pipelineLoggingId</c>, <c>@org</c>, <c>@at</c>).</summary>
    private const string CancelDeferredSql =
        """
        UPDATE org_pipeline_execution_queue SET status = 'CANCELLED', last_error = 'Cancelled before it started.', updated_at = @at
        WHERE queue_id = @pipelineLoggingId AND pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR org_slug = @org) AND status = 'QUEUED'
          AND NOT EXISTS (SELECT 1 FROM org_meta_pipeline_runs r WHERE r.pipeline_logging_id = @pipelineLoggingId)
        """;

    /// <summary>
    /// Scheduled runs that have a queue entry but no run row yet (the trigger writes only the entry; the worker that claims
    /// it creates the row), shaped as run rows: PENDING while queued or being claimed, CANCELLED or FAILED when the entry
    /// ended without a run row (cancelled before any claim, or it could not be prepared). Also selects <c>queue_id</c>.
    /// </summary>
    internal const string DeferredRunsSql =
        """
        SELECT q.queue_id, q.pipeline_logging_id, q.org_slug, q.pipeline AS pipeline_id, q.pipeline AS pipeline_path, 'SCHEDULER' AS "trigger",
            'scheduler' AS triggered_by, NULL AS org_api_key_id, NULL AS request_id,
            CASE q.status WHEN 'CANCELLED' THEN 'CANCELLED' WHEN 'FAILED' THEN 'FAILED' ELSE 'PENDING' END AS status,
            q.parameters, NULL AS resolved_config, NULL AS start_time,
            CASE WHEN q.status IN ('CANCELLED', 'FAILED') THEN q.updated_at END AS end_time, NULL AS duration_ms,
            CASE q.status WHEN 'CANCELLED' THEN 'Cancelled' WHEN 'FAILED' THEN 'RunNotStarted' END AS error_class,
            CASE WHEN q.status IN ('CANCELLED', 'FAILED') THEN q.last_error END AS error_message,
            MAX(q.attempts, 1) AS attempt, q.created_at, NULL AS idempotency_key, q.lease_owner AS worker_id, NULL AS heartbeat_at, NULL AS cancel_requested_at
        FROM org_pipeline_execution_queue q
        WHERE q.scheduled_for IS NOT NULL AND q.pipeline_logging_id IS NOT NULL AND q.status IN ('QUEUED', 'CLAIMED', 'RUNNING', 'CANCELLED', 'FAILED')
          AND NOT EXISTS (SELECT 1 FROM org_meta_pipeline_runs r WHERE r.pipeline_logging_id = q.pipeline_logging_id)
        """;

    public async Task<PipelineRunRecord?> FindRunByIdempotencyKeyAsync(OrgSlug org, string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<RunRow<string?>>(new CommandDefinition(
            "SELECT * FROM org_meta_pipeline_runs WHERE org_slug = @org AND idempotency_key = @idempotencyKey",
            new { org = org.Value, idempotencyKey }, cancellationToken: cancellationToken));
        return row?.ToRecord(SqliteRowValues.Timestamp);
    }

    public async Task<RunPage> ListRunsAsync(RunQuery query, CancellationToken cancellationToken)
    {
        var (afterCreated, afterId) = RunPageToken.Decode(query.PageToken);
        await using var connection = await OpenAsync(cancellationToken);
        const string Filter =
            """
            WHERE (@org IS NULL OR org_slug = @org)
              AND (@status IS NULL OR status = @status)
              AND (@pipeline IS NULL OR pipeline_path = @pipeline OR pipeline_id = @pipeline)
              AND (@since IS NULL OR created_at >= @since)
              AND (@afterCreated IS NULL OR created_at < @afterCreated OR (created_at = @afterCreated AND pipeline_logging_id < @afterId))
            ORDER BY created_at DESC, pipeline_logging_id DESC
            LIMIT @take
            """;
        var args = new
        {
            org = query.Org?.Value, status = query.Status, pipeline = query.Pipeline, since = SqliteSchema.Timestamp(query.Since),
            afterCreated, afterId, take = query.Limit + 1,
        };

        // The run rows and the scheduled runs still waiting for their first claim (no run row yet), each read in the
        // page's order, merged (ordinal: SQLite compares text by bytes).
        var rows = (await connection.QueryAsync<RunRow<string?>>(new CommandDefinition($"SELECT * FROM org_meta_pipeline_runs {Filter}", args, cancellationToken: cancellationToken)))
            .Concat(await connection.QueryAsync<RunRow<string?>>(new CommandDefinition($"SELECT * FROM ({DeferredRunsSql}) {Filter}", args, cancellationToken: cancellationToken)))
            .OrderByDescending(r => r.created_at, StringComparer.Ordinal)
            .ThenByDescending(r => r.pipeline_logging_id, StringComparer.Ordinal)
            .Take(query.Limit + 1)
            .ToList();
        var page = rows.Take(query.Limit).Select(r => r.ToRecord(SqliteRowValues.Timestamp)).ToList();
        var next = rows.Count > query.Limit ? RunPageToken.Encode(rows[query.Limit - 1].created_at ?? "", rows[query.Limit - 1].pipeline_logging_id) : null;
        return new RunPage(page, next);
    }

    public async Task<IReadOnlyList<StepLogRecord>> ListStepsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<StepRow<string?>>(new CommandDefinition(
            "SELECT * FROM org_meta_step_logs WHERE pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR org_slug = @org) ORDER BY step_logging_id",
            new { pipelineLoggingId, org = org?.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(SqliteRowValues.Timestamp))];
    }

    public async Task SaveDqResultAsync(DqResultRecord r, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_meta_dq_results (dq_result_id, pipeline_logging_id, step_logging_id, org_slug, table_name, check_name, severity, status,
                observed_value, threshold, failing_sample, created_at)
            VALUES (@DqResultId, @PipelineLoggingId, @StepLoggingId, @org, @TableName, @CheckName, @Severity, @Status,
                @ObservedValue, @Threshold, @FailingSample, @created)
            """,
            new
            {
                r.DqResultId, r.PipelineLoggingId, r.StepLoggingId, org = OrgColumn(r.OrgSlug), r.TableName, r.CheckName, r.Severity, r.Status,
                r.ObservedValue, r.Threshold, r.FailingSample, created = SqliteSchema.Timestamp(r.CreatedAt),
            },
            cancellationToken: cancellationToken));
    }

    public async Task<IReadOnlyList<DqResultRecord>> ListDqResultsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<DqRow<string?>>(new CommandDefinition(
            "SELECT * FROM org_meta_dq_results WHERE pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR org_slug = @org) ORDER BY created_at, dq_result_id",
            new { pipelineLoggingId, org = org?.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(SqliteRowValues.Timestamp))];
    }

    public async Task<PipelineRunRecord?> RequestCancelAsync(string pipelineLoggingId, OrgSlug? org, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using (var connection = await OpenAsync(cancellationToken))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_pipeline_runs SET cancel_requested_at = COALESCE(cancel_requested_at, @at)
                WHERE pipeline_logging_id = @pipelineLoggingId AND (@org IS NULL OR org_slug = @org) AND status IN ('PENDING', 'RUNNING')
                """,
                new { pipelineLoggingId, org = org?.Value, at = SqliteSchema.Timestamp(at) },
                cancellationToken: cancellationToken));

            // A scheduled run not yet claimed has no run row: its queued entry is cancelled instead. One claimed whose row
            // its worker has not created yet gets the row, with the request.
            await connection.ExecuteAsync(new CommandDefinition(
                CancelDeferredSql, new { pipelineLoggingId, org = org?.Value, at = SqliteSchema.Timestamp(at) }, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition(
                CancelClaimedDeferredSql, new { pipelineLoggingId, org = org?.Value, at = SqliteSchema.Timestamp(at) }, cancellationToken: cancellationToken));
        }

        return await FindRunAsync(pipelineLoggingId, org, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> HeartbeatAsync(string workerId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_meta_pipeline_runs SET heartbeat_at = @at WHERE worker_id = @workerId AND status IN ('PENDING', 'RUNNING')",
            new { workerId, at = SqliteSchema.Timestamp(at) },
            cancellationToken: cancellationToken));
        var cancelled = await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT pipeline_logging_id FROM org_meta_pipeline_runs WHERE worker_id = @workerId AND status IN ('PENDING', 'RUNNING') AND cancel_requested_at IS NOT NULL",
            new { workerId },
            cancellationToken: cancellationToken));
        return [.. cancelled];
    }

    public async Task<int> FailAbandonedRunsAsync(DateTimeOffset staleBefore, DateTimeOffset at, string reason, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        var args = new { stale = SqliteSchema.Timestamp(staleBefore), at = SqliteSchema.Timestamp(at), reason };
        var ids = (await connection.QueryAsync<string>(new CommandDefinition(
            """
            SELECT r.pipeline_logging_id FROM org_meta_pipeline_runs r
            WHERE r.status IN ('PENDING', 'RUNNING') AND (r.heartbeat_at IS NULL OR r.heartbeat_at < @stale)
              AND NOT EXISTS (SELECT 1 FROM org_pipeline_execution_queue q
                              WHERE q.pipeline_logging_id = r.pipeline_logging_id AND q.status IN ('QUEUED', 'CLAIMED', 'RUNNING'))
            """,
            args, transaction, cancellationToken: cancellationToken))).ToList();
        if (ids.Count > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_pipeline_runs SET status = 'FAILED', end_time = @at, error_class = 'RunAbandoned', error_message = @reason
                WHERE pipeline_logging_id IN @ids AND status IN ('PENDING', 'RUNNING')
                """,
                new { args.at, args.reason, ids }, transaction, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_step_logs SET status = CASE status WHEN 'RUNNING' THEN 'FAILED' ELSE 'SKIPPED' END, end_time = @at,
                    error_class = CASE status WHEN 'RUNNING' THEN 'RunAbandoned' ELSE NULL END, error_message = CASE status WHEN 'RUNNING' THEN @reason ELSE NULL END
                WHERE pipeline_logging_id IN @ids AND status IN ('PENDING', 'RUNNING')
                """,
                new { args.at, args.reason, ids }, transaction, cancellationToken: cancellationToken));
        }

        await transaction.CommitAsync(cancellationToken);
        return ids.Count;
    }

    public async Task SaveStepAsync(StepLogRecord step, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(SaveStepSql, StepArgs(step), cancellationToken: cancellationToken));
    }

    private const string SaveStepSql =
        """
        INSERT INTO org_meta_step_logs (step_logging_id, pipeline_logging_id, org_slug, step_id, ps_type, status, start_time, end_time,
            duration_ms, rows_processed, attempt, metadata, error_class, error_message)
        VALUES (@StepLoggingId, @PipelineLoggingId, @Org, @StepId, @PsType, @Status, @StartTime, @EndTime,
            @DurationMs, @RowsProcessed, @Attempt, @Metadata, @ErrorClass, @ErrorMessage)
        ON CONFLICT (step_logging_id) DO UPDATE SET status = excluded.status, start_time = excluded.start_time, end_time = excluded.end_time,
            duration_ms = excluded.duration_ms, rows_processed = excluded.rows_processed, attempt = excluded.attempt,
            metadata = excluded.metadata, error_class = excluded.error_class, error_message = excluded.error_message
        """;

    private static object StepArgs(StepLogRecord step) => new
    {
        step.StepLoggingId,
        step.PipelineLoggingId,
        Org = OrgColumn(step.OrgSlug),
        step.StepId,
        step.PsType,
        step.Status,
        StartTime = SqliteSchema.Timestamp(step.StartTime),
        EndTime = SqliteSchema.Timestamp(step.EndTime),
        step.DurationMs,
        step.RowsProcessed,
        step.Attempt,
        Metadata = step.Metadata is null ? null : JsonSerializer.Serialize(step.Metadata),
        step.ErrorClass,
        step.ErrorMessage,
    };

    /// <summary>Platform runs (bootstrap) have no org; their run-log rows carry this in the NOT NULL org_slug column.</summary>
    private static string OrgColumn(OrgSlug? org) => org?.Value ?? RunRows.NoOrg;

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => _files.OpenAsync(DatasetRef.Central, cancellationToken);
}
