using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Convergence.Core.Audit;
using Convergence.Core.Integrations;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Dapper;
using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>
/// The control plane on PostgreSQL: the central <c>organizations</c> dataset is a schema of that name, shared by every
/// service instance. Types are native (<c>timestamptz</c>, <c>boolean</c>, <c>jsonb</c>, <c>date</c>); JSON is read back as text.
/// </summary>
internal sealed partial class PostgresControlPlaneStore(PostgresControlPlaneSource source) : IControlPlaneStore
{
    /// <summary>Tables this store reads and writes; bootstrap must have created all of them (the same list as SQLite's).</summary>
    internal static readonly string[] RequiredTables =
    [
        "org_profiles", "org_api_keys", "org_subscriptions", "org_usage_quotas", "org_integration_credentials",
        "org_pipeline_configs", "org_scheduled_pipeline_runs", "org_pipeline_execution_queue", "org_meta_pipeline_runs",
        "org_meta_step_logs", "org_meta_dq_results", "org_audit_logs",
    ];

    internal const string RunColumns =
        """
        pipeline_logging_id, org_slug, pipeline_id, pipeline_path, "trigger", triggered_by, org_api_key_id, request_id, status,
        parameters::text AS parameters, resolved_config::text AS resolved_config, start_time, end_time, error_class, error_message,
        idempotency_key, worker_id, heartbeat_at, cancel_requested_at, attempt, created_at
        """;

    private const string ApiKeyColumns =
        """
        k.org_api_key_id, k.org_slug, k.org_api_key_hash, k.encrypted_org_api_key, k.fingerprint, k.scopes::text AS scopes, k.is_active,
        k.expires_at, k.created_at, k.last_used_at, k.revoked_at
        """;

    private const string CredentialColumns =
        """
        credential_id, org_slug, provider, credential_name, encrypted_credential, key_version, validation_status, last_validated_at,
        last_error, metadata::text AS metadata, is_active, created_at, updated_at
        """;

    private const string StepColumns =
        """
        step_logging_id, pipeline_logging_id, org_slug, step_id, ps_type, status, start_time, end_time, rows_processed, attempt,
        metadata::text AS metadata, error_class, error_message
        """;

    private const string DqColumns =
        """
        dq_result_id, pipeline_logging_id, step_logging_id, org_slug, table_name, check_name, severity, status, observed_value, threshold,
        failing_sample::text AS failing_sample, created_at
        """;

    private const string AuditColumns =
        "audit_id, occurred_at, actor_type, actor_key_id, user_id, action, org_slug, request_id, outcome, details::text AS details";

    private const string BootstrapLock = "SELECT pg_advisory_xact_lock(hashtext('convergence:bootstrap:organizations'))";

    private volatile bool _bootstrapped;

    public string Kind => "postgres";

    public async Task<BootstrapOutcome> BootstrapAsync(IReadOnlyList<TableSchema> tables, BootstrapOptions options, CancellationToken cancellationToken)
    {
        var missing = RequiredTables.Except(tables.Select(t => t.Name)).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException($"The bootstrap schemas lack tables the control plane needs: {string.Join(", ", missing)}.");
        }

        _bootstrapped = false;
        var central = DatasetRef.Central;
        var schema = PostgresSchema.Quote(central.Name);

        // PostgreSQL DDL is transactional: the schema and every table appear together or not at all.
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, transaction, BootstrapLock, null, cancellationToken);
        if (options.ForceRecreateDataset)
        {
            await ExecuteAsync(connection, transaction, $"DROP SCHEMA IF EXISTS {schema} CASCADE", null, cancellationToken);
        }

        var datasetCreated = !await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = @name)", new { name = central.Name }, transaction, cancellationToken: cancellationToken));
        if (datasetCreated)
        {
            await ExecuteAsync(connection, transaction, $"CREATE SCHEMA IF NOT EXISTS {schema}", null, cancellationToken);
        }

        var created = new List<string>();
        var existing = new List<string>();
        foreach (var table in tables)
        {
            var exists = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = @schema AND table_name = @table)",
                new { schema = central.Name, table = table.Name }, transaction, cancellationToken: cancellationToken));
            if (exists && options.ForceRecreateTables)
            {
                await ExecuteAsync(connection, transaction, $"DROP TABLE {PostgresSchema.Qualified(central, table.Name)}", null, cancellationToken);
                exists = false;
            }

            if (exists)
            {
                existing.Add(table.Name);
                continue;
            }

            foreach (var statement in PostgresSchema.CreateStatements(central, table))
            {
                await ExecuteAsync(connection, transaction, statement, null, cancellationToken);
            }

            created.Add(table.Name);
        }

        await transaction.CommitAsync(cancellationToken);
        _bootstrapped = true;
        return new BootstrapOutcome(datasetCreated, created, existing);
    }

    public async Task<bool> IsBootstrappedAsync(CancellationToken cancellationToken)
    {
        if (_bootstrapped)
        {
            return true;
        }

        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var count = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = @schema AND table_name = ANY(@RequiredTables)",
            new { schema = DatasetRef.CentralName, RequiredTables }, cancellationToken: cancellationToken));
        _bootstrapped = count == RequiredTables.Length;
        return _bootstrapped;
    }

    public async Task<bool> IsReachableAsync(CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        return await connection.ExecuteScalarAsync<int>(new CommandDefinition("SELECT 1", cancellationToken: cancellationToken)) == 1;
    }

    public async Task<IControlPlaneTransaction> BeginTransactionAsync(CancellationToken cancellationToken)
    {
        var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            return new PostgresControlPlaneTransaction(connection, transaction);
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
        var row = await connection.QuerySingleOrDefaultAsync<ProfileRow<DateTime?>>(new CommandDefinition(
            "SELECT * FROM org_profiles WHERE org_slug = @org", new { org = org.Value }, cancellationToken: cancellationToken));
        return row?.ToRecord(PostgresRowValues.Timestamp);
    }

    public async Task<OrgOverview?> GetOrganizationOverviewAsync(OrgSlug org, DateOnly usageDate, CancellationToken cancellationToken)
    {
        // One round trip: this read sits behind every authenticated GET of an org.
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ProfileRow<DateTime?>, SubscriptionRow<DateTime?>, QuotaRow<DateTime?>, OrgOverview>(
            new CommandDefinition(
                """
                SELECT p.org_slug, p.company_name, p.admin_email, p.status, p.subscription_plan, p.dataset_id, p.created_at, p.updated_at,
                       s.plan_name, s.org_slug, s.status, s.daily_limit, s.monthly_limit, s.concurrent_limit, s.trial_ends_at, s.subscription_start, s.updated_at,
                       to_char(q.usage_date, 'YYYY-MM-DD') AS usage_date, q.org_slug, q.pipelines_run_today, q.pipelines_run_month, q.concurrent_running,
                       q.last_reset_daily, q.last_reset_monthly
                FROM org_profiles p
                LEFT JOIN org_subscriptions s ON s.org_slug = p.org_slug
                LEFT JOIN LATERAL (SELECT * FROM org_usage_quotas u WHERE u.org_slug = p.org_slug ORDER BY u.usage_date DESC LIMIT 1) q ON true
                WHERE p.org_slug = @org
                """,
                new { org = org.Value },
                cancellationToken: cancellationToken),
            (profile, subscription, quota) => new OrgOverview(
                profile.ToRecord(PostgresRowValues.Timestamp), subscription?.ToRecord(PostgresRowValues.Timestamp), quota?.ToRecord(usageDate, PostgresRowValues.Timestamp)),
            splitOn: "plan_name,usage_date");
        return rows.SingleOrDefault();
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ApiKeyRow<DateTime?, bool>>(new CommandDefinition(
            $"SELECT {ApiKeyColumns} FROM org_api_keys k WHERE k.org_slug = @org ORDER BY k.created_at", new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag))];
    }

    public async Task<ApiKeyLookup?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ApiKeyLookupRow<DateTime?, bool>>(new CommandDefinition(
            $"SELECT {ApiKeyColumns}, p.status AS org_status FROM org_api_keys k JOIN org_profiles p ON p.org_slug = k.org_slug WHERE k.org_api_key_hash = @keyHash",
            new { keyHash }, cancellationToken: cancellationToken));
        return row is null ? null : new ApiKeyLookup(row.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag), row.org_status);
    }

    public async Task TouchApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_api_keys SET last_used_at = @at WHERE org_slug = @org AND org_api_key_id = @keyId",
            new { org = org.Value, keyId, at = PostgresValues.Timestamp(at) }, cancellationToken: cancellationToken));
    }

    public async Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await PostgresControlPlaneTransaction.InsertAuditAsync(connection, null, entry, cancellationToken);
    }

    public async Task<IReadOnlyList<AuditEntry>> ListAuditAsync(OrgSlug org, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<AuditRow<DateTime?>>(new CommandDefinition(
            $"SELECT {AuditColumns} FROM org_audit_logs WHERE org_slug = @org ORDER BY occurred_at DESC, audit_id COLLATE \"C\" DESC LIMIT @limit",
            new { org = org.Value, limit }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp))];
    }

    public async Task SaveRunAsync(PipelineRunRecord run, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(PostgresRuns.SaveSql, PostgresRuns.Args(run), cancellationToken: cancellationToken));
    }

    public async Task SaveRunAsync(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken)
    {
        // One round trip: the run's upsert and each step's.
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(PostgresRuns.SaveBatch(run, steps, cancellationToken));
    }

    public async Task CreateRunAsync(PipelineRunRecord run, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(PostgresRuns.InsertSql, PostgresRuns.Args(run), cancellationToken: cancellationToken));
        }
        catch (Exception ex) when (PostgresValues.IsUniqueViolation(ex))
        {
            throw new DuplicateRowException("org_meta_pipeline_runs", ex);
        }
    }

    public async Task ReplaceCredentialAsync(IntegrationCredential c, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = PostgresValues.Timestamp(c.UpdatedAt);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_integration_credentials SET is_active = false, encrypted_credential = '', updated_at = @now WHERE org_slug = @org AND provider = @provider AND is_active",
            new { org = c.OrgSlug.Value, provider = c.Provider.StoredName, now }, transaction, cancellationToken: cancellationToken));
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_integration_credentials (credential_id, org_slug, provider, credential_name, encrypted_credential, key_version,
                validation_status, last_validated_at, last_error, metadata, is_active, created_at, updated_at)
            VALUES (@CredentialId, @org, @provider, @CredentialName, @EncryptedCredential, @KeyVersion,
                @ValidationStatus, @validated, @LastError, CAST(@metadata AS jsonb), true, @created, @now)
            """,
            new
            {
                c.CredentialId, org = c.OrgSlug.Value, provider = c.Provider.StoredName, c.CredentialName, c.EncryptedCredential, c.KeyVersion,
                c.ValidationStatus, validated = PostgresValues.Timestamp(c.LastValidatedAt), c.LastError, metadata = JsonSerializer.Serialize(c.Metadata),
                created = PostgresValues.Timestamp(c.CreatedAt), now,
            },
            transaction,
            cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<IntegrationCredential?> FindActiveCredentialAsync(OrgSlug org, IntegrationProvider provider, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<CredentialRow<DateTime?, bool>>(new CommandDefinition(
            $"SELECT {CredentialColumns} FROM org_integration_credentials WHERE org_slug = @org AND provider = @provider AND is_active",
            new { org = org.Value, provider = provider.StoredName }, cancellationToken: cancellationToken));
        return row?.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag);
    }

    public async Task<IReadOnlyList<IntegrationCredential>> ListActiveCredentialsAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<CredentialRow<DateTime?, bool>>(new CommandDefinition(
            $"SELECT {CredentialColumns} FROM org_integration_credentials WHERE org_slug = @org AND is_active ORDER BY provider COLLATE \"C\"",
            new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag))];
    }

    public async Task<bool> UpdateCredentialValidationAsync(OrgSlug org, string credentialId, string status, string? lastError, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_integration_credentials SET validation_status = @status, last_error = @lastError, last_validated_at = @at, updated_at = @at
            WHERE org_slug = @org AND credential_id = @credentialId AND is_active
            """,
            new { org = org.Value, credentialId, status, lastError, at = PostgresValues.Timestamp(at) }, cancellationToken: cancellationToken)) > 0;
    }

    public async Task<bool> DeactivateCredentialAsync(OrgSlug org, IntegrationProvider provider, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_integration_credentials SET is_active = false, encrypted_credential = '', updated_at = @at WHERE org_slug = @org AND provider = @provider AND is_active",
            new { org = org.Value, provider = provider.StoredName, at = PostgresValues.Timestamp(at) }, cancellationToken: cancellationToken)) > 0;
    }

    public async Task<IReadOnlyList<StoredCiphertext>> ListCiphertextsAsync(CiphertextTable table, string? afterRecordId, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        var (name, id, column, provider) = CiphertextColumns(table);
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<(string Id, string Org, string? Provider, string Ciphertext)>(new CommandDefinition(
            // Erased ciphertexts (deleted or replaced credentials) hold nothing to re-wrap. COLLATE "C" keeps the byte order SQLite pages in.
            $"""
            SELECT {id}, org_slug, {provider}, {column} FROM {name}
            WHERE (CAST(@after AS text) IS NULL OR {id} COLLATE "C" > @after) AND {column} <> ''
            ORDER BY {id} COLLATE "C"
            LIMIT @limit
            """,
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
        CiphertextTable.OrgApiKeys => ("org_api_keys", "org_api_key_id", "encrypted_org_api_key", "CAST(NULL AS text)"),
        _ => throw new ArgumentOutOfRangeException(nameof(table), table, "not a ciphertext table"),
    };

    public async Task<PipelineRunRecord?> FindRunAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken)
    {
        // The run row or, for a scheduled run whose claiming worker has not created it yet, its queue entry (whose queue_id
        // is the run's id), in one statement: two reads could miss the run in between, when the row is created after the
        // first and the entry stops standing for it before the second.
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<RunRow<DateTime?>>(new CommandDefinition(
            $"""
            SELECT {RunColumns} FROM org_meta_pipeline_runs WHERE pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR org_slug = @org)
            UNION ALL
            SELECT {RunColumns} FROM ({DeferredRunsSql}) AS d
            WHERE queue_id = @pipelineLoggingId AND pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR org_slug = @org)
            """,
            new { pipelineLoggingId, org = org?.Value }, cancellationToken: cancellationToken));
        return row?.ToRecord(PostgresRowValues.Timestamp);
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
            GREATEST(q.attempts, 1), q.lease_owner, q.created_at, @at
        FROM org_pipeline_execution_queue q
        WHERE q.queue_id = @pipelineLoggingId AND q.pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR q.org_slug = @org)
          AND q.scheduled_for IS NOT NULL AND q.status IN ('CLAIMED', 'RUNNING')
        ON CONFLICT (pipeline_logging_id) DO UPDATE SET cancel_requested_at = COALESCE(org_meta_pipeline_runs.cancel_requested_at, excluded.cancel_requested_at)
        WHERE org_meta_pipeline_runs.status IN ('PENDING', 'RUNNING')
        """;

    /// <summary>Cancels the QUEUED entry of a scheduled run that has no run row (<c>@pipelineLoggingId</c>, <c>@org</c>, <c>@at</c>).</summary>
    private const string CancelDeferredSql =
        """
        UPDATE org_pipeline_execution_queue SET status = 'CANCELLED', last_error = 'Cancelled before it started.', updated_at = @at
        WHERE queue_id = @pipelineLoggingId AND pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR org_slug = @org) AND status = 'QUEUED'
          AND NOT EXISTS (SELECT 1 FROM org_meta_pipeline_runs r WHERE r.pipeline_logging_id = @pipelineLoggingId)
        """;

    /// <summary>
    /// Scheduled runs that have a queue entry but no run row yet (the trigger writes only the entry; the worker that claims
    /// it creates the row), shaped as run rows: PENDING while queued or being claimed, CANCELLED or FAILED when the entry
    /// ended without a run row (cancelled before any claim, or it could not be prepared). Also selects <c>queue_id</c>.
    /// </summary>
    private const string DeferredRunsSql =
        """
        SELECT q.queue_id, q.pipeline_logging_id, q.org_slug, q.pipeline AS pipeline_id, q.pipeline AS pipeline_path, 'SCHEDULER' AS "trigger",
            'scheduler' AS triggered_by, CAST(NULL AS text) AS org_api_key_id, CAST(NULL AS text) AS request_id,
            CASE q.status WHEN 'CANCELLED' THEN 'CANCELLED' WHEN 'FAILED' THEN 'FAILED' ELSE 'PENDING' END AS status,
            q.parameters::text AS parameters, CAST(NULL AS text) AS resolved_config, CAST(NULL AS timestamptz) AS start_time,
            CASE WHEN q.status IN ('CANCELLED', 'FAILED') THEN q.updated_at END AS end_time,
            CASE q.status WHEN 'CANCELLED' THEN 'Cancelled' WHEN 'FAILED' THEN 'RunNotStarted' END AS error_class,
            CASE WHEN q.status IN ('CANCELLED', 'FAILED') THEN q.last_error END AS error_message,
            CAST(NULL AS text) AS idempotency_key, q.lease_owner AS worker_id, CAST(NULL AS timestamptz) AS heartbeat_at,
            CAST(NULL AS timestamptz) AS cancel_requested_at, GREATEST(q.attempts, 1) AS attempt, q.created_at
        FROM org_pipeline_execution_queue q
        WHERE q.scheduled_for IS NOT NULL AND q.pipeline_logging_id IS NOT NULL AND q.status IN ('QUEUED', 'CLAIMED', 'RUNNING', 'CANCELLED', 'FAILED')
          AND NOT EXISTS (SELECT 1 FROM org_meta_pipeline_runs r WHERE r.pipeline_logging_id = q.pipeline_logging_id)
        """;

    public async Task<PipelineRunRecord?> FindRunByIdempotencyKeyAsync(OrgSlug org, string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<RunRow<DateTime?>>(new CommandDefinition(
            $"SELECT {RunColumns} FROM org_meta_pipeline_runs WHERE org_slug = @org AND idempotency_key = @idempotencyKey",
            new { org = org.Value, idempotencyKey }, cancellationToken: cancellationToken));
        return row?.ToRecord(PostgresRowValues.Timestamp);
    }

    public async Task<RunPage> ListRunsAsync(RunQuery query, CancellationToken cancellationToken)
    {
        var (afterCreated, afterId) = PostgresRunPageToken.Decode(query.PageToken);
        await using var connection = await OpenAsync(cancellationToken);
        const string Filter =
            """
            WHERE (CAST(@org AS text) IS NULL OR org_slug = @org)
              AND (CAST(@status AS text) IS NULL OR status = @status)
              AND (CAST(@pipeline AS text) IS NULL OR pipeline_path = @pipeline OR pipeline_id = @pipeline)
              AND (CAST(@since AS timestamptz) IS NULL OR created_at >= @since)
              AND (CAST(@afterCreated AS timestamptz) IS NULL OR created_at < @afterCreated
                   OR (created_at = @afterCreated AND pipeline_logging_id COLLATE "C" < @afterId))
            ORDER BY created_at DESC, pipeline_logging_id COLLATE "C" DESC
            LIMIT @take
            """;
        var args = new
        {
            org = query.Org?.Value, status = query.Status, pipeline = query.Pipeline, since = PostgresValues.Timestamp(query.Since),
            afterCreated, afterId, take = query.Limit + 1,
        };

        // The run rows and the scheduled runs still waiting for their first claim (no run row yet), each read in the
        // page's order, merged (ordinal, as COLLATE "C").
        var rows = (await connection.QueryAsync<RunRow<DateTime?>>(new CommandDefinition($"SELECT {RunColumns} FROM org_meta_pipeline_runs {Filter}", args, cancellationToken: cancellationToken)))
            .Concat(await connection.QueryAsync<RunRow<DateTime?>>(new CommandDefinition($"SELECT * FROM ({DeferredRunsSql}) AS d {Filter}", args, cancellationToken: cancellationToken)))
            .OrderByDescending(r => r.created_at)
            .ThenByDescending(r => r.pipeline_logging_id, StringComparer.Ordinal)
            .Take(query.Limit + 1)
            .ToList();
        var page = rows.Take(query.Limit).Select(r => r.ToRecord(PostgresRowValues.Timestamp)).ToList();
        var next = rows.Count > query.Limit ? PostgresRunPageToken.Encode(rows[query.Limit - 1].created_at.GetValueOrDefault(), rows[query.Limit - 1].pipeline_logging_id) : null;
        return new RunPage(page, next);
    }

    public async Task<IReadOnlyList<StepLogRecord>> ListStepsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<StepRow<DateTime?>>(new CommandDefinition(
            $"""
            SELECT {StepColumns} FROM org_meta_step_logs
            WHERE pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR org_slug = @org)
            ORDER BY step_logging_id COLLATE "C"
            """,
            new { pipelineLoggingId, org = org?.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp))];
    }

    public async Task SaveDqResultAsync(DqResultRecord r, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_meta_dq_results (dq_result_id, pipeline_logging_id, step_logging_id, org_slug, table_name, check_name, severity, status,
                observed_value, threshold, failing_sample, created_at)
            VALUES (@DqResultId, @PipelineLoggingId, @StepLoggingId, @org, @TableName, @CheckName, @Severity, @Status,
                @ObservedValue, @Threshold, CAST(@FailingSample AS jsonb), @created)
            """,
            new
            {
                r.DqResultId, r.PipelineLoggingId, r.StepLoggingId, org = OrgColumn(r.OrgSlug), r.TableName, r.CheckName, r.Severity, r.Status,
                r.ObservedValue, r.Threshold, r.FailingSample, created = PostgresValues.Timestamp(r.CreatedAt),
            },
            cancellationToken: cancellationToken));
    }

    public async Task<IReadOnlyList<DqResultRecord>> ListDqResultsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<DqRow<DateTime?>>(new CommandDefinition(
            $"""
            SELECT {DqColumns} FROM org_meta_dq_results
            WHERE pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR org_slug = @org)
            ORDER BY created_at, dq_result_id COLLATE "C"
            """,
            new { pipelineLoggingId, org = org?.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp))];
    }

    public async Task<PipelineRunRecord?> RequestCancelAsync(string pipelineLoggingId, OrgSlug? org, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using (var connection = await OpenAsync(cancellationToken))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_pipeline_runs SET cancel_requested_at = COALESCE(cancel_requested_at, @at)
                WHERE pipeline_logging_id = @pipelineLoggingId AND (CAST(@org AS text) IS NULL OR org_slug = @org) AND status IN ('PENDING', 'RUNNING')
                """,
                new { pipelineLoggingId, org = org?.Value, at = PostgresValues.Timestamp(at) },
                cancellationToken: cancellationToken));

            // A scheduled run not yet claimed has no run row: its queued entry is cancelled instead. One claimed whose row
            // its worker has not created yet gets the row, with the request.
            await connection.ExecuteAsync(new CommandDefinition(
                CancelDeferredSql, new { pipelineLoggingId, org = org?.Value, at = PostgresValues.Timestamp(at) }, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition(
                CancelClaimedDeferredSql, new { pipelineLoggingId, org = org?.Value, at = PostgresValues.Timestamp(at) }, cancellationToken: cancellationToken));
        }

        return await FindRunAsync(pipelineLoggingId, org, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> HeartbeatAsync(string workerId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE org_meta_pipeline_runs SET heartbeat_at = @at WHERE worker_id = @workerId AND status IN ('PENDING', 'RUNNING')",
            new { workerId, at = PostgresValues.Timestamp(at) },
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
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var stamp = PostgresValues.Timestamp(at);

        // A run with a live queue entry belongs to the queue (its lease rescuer decides); only orphans are failed here.
        // The rows are locked, so two instances sweeping at once fail each run once.
        var ids = (await connection.QueryAsync<string>(new CommandDefinition(
            """
            SELECT r.pipeline_logging_id FROM org_meta_pipeline_runs r
            WHERE r.status IN ('PENDING', 'RUNNING') AND (r.heartbeat_at IS NULL OR r.heartbeat_at < @stale)
              AND NOT EXISTS (SELECT 1 FROM org_pipeline_execution_queue q
                              WHERE q.pipeline_logging_id = r.pipeline_logging_id AND q.status IN ('QUEUED', 'CLAIMED', 'RUNNING'))
            FOR UPDATE OF r SKIP LOCKED
            """,
            new { stale = PostgresValues.Timestamp(staleBefore) }, transaction, cancellationToken: cancellationToken))).ToArray();
        if (ids.Length > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_pipeline_runs SET status = 'FAILED', end_time = @at, error_class = 'RunAbandoned', error_message = @reason
                WHERE pipeline_logging_id = ANY(@ids) AND status IN ('PENDING', 'RUNNING')
                """,
                new { at = stamp, reason, ids }, transaction, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE org_meta_step_logs SET status = CASE status WHEN 'RUNNING' THEN 'FAILED' ELSE 'SKIPPED' END, end_time = @at,
                    error_class = CASE status WHEN 'RUNNING' THEN 'RunAbandoned' ELSE NULL END, error_message = CASE status WHEN 'RUNNING' THEN @reason ELSE NULL END
                WHERE pipeline_logging_id = ANY(@ids) AND status IN ('PENDING', 'RUNNING')
                """,
                new { at = stamp, reason, ids }, transaction, cancellationToken: cancellationToken));
        }

        await transaction.CommitAsync(cancellationToken);
        return ids.Length;
    }

    public async Task SaveStepAsync(StepLogRecord step, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(PostgresRuns.SaveStepSql, PostgresRuns.StepArgs(step), cancellationToken: cancellationToken));
    }

    private static string OrgColumn(OrgSlug? org) => org?.Value ?? RunRows.NoOrg;

    private static Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, object? args, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(sql, args, transaction, cancellationToken: cancellationToken));

    private ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken) => source.DataSource.OpenConnectionAsync(cancellationToken);
}
