using System.Text.Json;
using Convergence.Core.Audit;
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
        var row = await connection.QuerySingleOrDefaultAsync<ProfileRow>(new CommandDefinition(
            "SELECT * FROM org_profiles WHERE org_slug = @org", new { org = org.Value }, cancellationToken: cancellationToken));
        return row?.ToRecord();
    }

    public async Task<OrgOverview?> GetOrganizationOverviewAsync(OrgSlug org, DateOnly usageDate, CancellationToken cancellationToken)
    {
        // One round trip: this read sits behind every authenticated GET of an org.
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ProfileRow, SubscriptionRow, QuotaRow, OrgOverview>(
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
            (profile, subscription, quota) => new OrgOverview(profile.ToRecord(), subscription?.ToRecord(), quota?.ToRecord(usageDate)),
            splitOn: "plan_name,usage_date");
        return rows.SingleOrDefault();
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ApiKeyRow>(new CommandDefinition(
            "SELECT * FROM org_api_keys WHERE org_slug = @org ORDER BY created_at", new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord())];
    }

    public async Task<ApiKeyLookup?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ApiKeyLookupRow>(new CommandDefinition(
            "SELECT k.*, p.status AS org_status FROM org_api_keys k JOIN org_profiles p ON p.org_slug = k.org_slug WHERE k.org_api_key_hash = @keyHash",
            new { keyHash }, cancellationToken: cancellationToken));
        return row is null ? null : new ApiKeyLookup(row.ToRecord(), row.org_status);
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
        var rows = await connection.QueryAsync<AuditRow>(new CommandDefinition(
            "SELECT * FROM org_audit_logs WHERE org_slug = @org ORDER BY occurred_at DESC, audit_id DESC LIMIT @limit",
            new { org = org.Value, limit }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord())];
    }

    public async Task SaveRunAsync(PipelineRunRecord run, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_meta_pipeline_runs (pipeline_logging_id, org_slug, pipeline_id, pipeline_path, "trigger", triggered_by, org_api_key_id,
                request_id, status, parameters, resolved_config, start_time, end_time, duration_ms, error_class, error_message, attempt, created_at)
            VALUES (@PipelineLoggingId, @Org, @PipelineId, @PipelinePath, @Trigger, @TriggeredBy, @OrgApiKeyId,
                @RequestId, @Status, @Parameters, @ResolvedConfig, @StartTime, @EndTime, @DurationMs, @ErrorClass, @ErrorMessage, @Attempt, @CreatedAt)
            ON CONFLICT (pipeline_logging_id) DO UPDATE SET status = excluded.status, resolved_config = excluded.resolved_config,
                start_time = excluded.start_time, end_time = excluded.end_time, duration_ms = excluded.duration_ms,
                error_class = excluded.error_class, error_message = excluded.error_message, attempt = excluded.attempt
            """,
            new
            {
                run.PipelineLoggingId,
                Org = run.OrgSlug?.Value ?? "-",
                run.PipelineId,
                run.PipelinePath,
                run.Trigger,
                run.TriggeredBy,
                run.OrgApiKeyId,
                run.RequestId,
                run.Status,
                Parameters = JsonSerializer.Serialize(run.Parameters),
                run.ResolvedConfig,
                StartTime = SqliteSchema.Timestamp(run.StartTime),
                EndTime = SqliteSchema.Timestamp(run.EndTime),
                run.DurationMs,
                run.ErrorClass,
                run.ErrorMessage,
                run.Attempt,
                CreatedAt = SqliteSchema.Timestamp(run.CreatedAt),
            },
            cancellationToken: cancellationToken));
    }

    public async Task SaveStepAsync(StepLogRecord step, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_meta_step_logs (step_logging_id, pipeline_logging_id, org_slug, step_id, ps_type, status, start_time, end_time,
                duration_ms, rows_processed, attempt, metadata, error_class, error_message)
            VALUES (@StepLoggingId, @PipelineLoggingId, @Org, @StepId, @PsType, @Status, @StartTime, @EndTime,
                @DurationMs, @RowsProcessed, @Attempt, @Metadata, @ErrorClass, @ErrorMessage)
            ON CONFLICT (step_logging_id) DO UPDATE SET status = excluded.status, start_time = excluded.start_time, end_time = excluded.end_time,
                duration_ms = excluded.duration_ms, rows_processed = excluded.rows_processed, attempt = excluded.attempt,
                metadata = excluded.metadata, error_class = excluded.error_class, error_message = excluded.error_message
            """,
            new
            {
                step.StepLoggingId,
                step.PipelineLoggingId,
                Org = step.OrgSlug?.Value ?? "-",
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
            },
            cancellationToken: cancellationToken));
    }

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => _files.OpenAsync(DatasetRef.Central, cancellationToken);

#pragma warning disable IDE1006, SA1300 // Row classes mirror the snake_case columns they are read from.
    internal sealed class ProfileRow
    {
        public string org_slug { get; set; } = "";
        public string company_name { get; set; } = "";
        public string admin_email { get; set; } = "";
        public string status { get; set; } = "";
        public string subscription_plan { get; set; } = "";
        public string dataset_id { get; set; } = "";
        public string created_at { get; set; } = "";
        public string updated_at { get; set; } = "";

        public OrgProfile ToRecord() => new(
            OrgSlug.From(org_slug), company_name, admin_email, status, subscription_plan, dataset_id,
            SqliteSchema.ParseTimestamp(created_at), SqliteSchema.ParseTimestamp(updated_at));
    }

    internal sealed class SubscriptionRow
    {
        public string org_slug { get; set; } = "";
        public string plan_name { get; set; } = "";
        public string status { get; set; } = "";
        public long daily_limit { get; set; }
        public long monthly_limit { get; set; }
        public long concurrent_limit { get; set; }
        public string? trial_ends_at { get; set; }
        public string subscription_start { get; set; } = "";
        public string updated_at { get; set; } = "";

        public OrgSubscription ToRecord() => new(
            OrgSlug.From(org_slug), plan_name, status, (int)daily_limit, (int)monthly_limit, (int)concurrent_limit,
            SqliteSchema.ParseTimestampOrNull(trial_ends_at), SqliteSchema.ParseTimestamp(subscription_start), SqliteSchema.ParseTimestamp(updated_at));
    }

    internal sealed class QuotaRow
    {
        public string org_slug { get; set; } = "";
        public string usage_date { get; set; } = "";
        public long pipelines_run_today { get; set; }
        public long pipelines_run_month { get; set; }
        public long concurrent_running { get; set; }
        public string last_reset_daily { get; set; } = "";
        public string last_reset_monthly { get; set; } = "";

        /// <summary>A row from an earlier day reads as zero runs today (the daily reset has not written yet).</summary>
        public OrgUsageQuota ToRecord(DateOnly today)
        {
            var date = DateOnly.ParseExact(usage_date, "yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
            return new(OrgSlug.From(org_slug), today, date == today ? (int)pipelines_run_today : 0, (int)pipelines_run_month, (int)concurrent_running,
                SqliteSchema.ParseTimestamp(last_reset_daily), SqliteSchema.ParseTimestamp(last_reset_monthly));
        }
    }

    internal class ApiKeyRow
    {
        public string org_api_key_id { get; set; } = "";
        public string org_slug { get; set; } = "";
        public string org_api_key_hash { get; set; } = "";
        public string encrypted_org_api_key { get; set; } = "";
        public string fingerprint { get; set; } = "";
        public string scopes { get; set; } = "[]";
        public long is_active { get; set; }
        public string? expires_at { get; set; }
        public string created_at { get; set; } = "";
        public string? last_used_at { get; set; }
        public string? revoked_at { get; set; }

        public ApiKeyRecord ToRecord() => new(
            org_api_key_id, OrgSlug.From(org_slug), org_api_key_hash, encrypted_org_api_key, fingerprint,
            JsonSerializer.Deserialize<List<string>>(scopes) ?? [], is_active != 0, SqliteSchema.ParseTimestampOrNull(expires_at),
            SqliteSchema.ParseTimestamp(created_at), SqliteSchema.ParseTimestampOrNull(last_used_at), SqliteSchema.ParseTimestampOrNull(revoked_at));
    }

    internal sealed class ApiKeyLookupRow : ApiKeyRow
    {
        public string org_status { get; set; } = "";
    }

    internal sealed class AuditRow
    {
        public string audit_id { get; set; } = "";
        public string occurred_at { get; set; } = "";
        public string actor_type { get; set; } = "";
        public string? actor_key_id { get; set; }
        public string? user_id { get; set; }
        public string action { get; set; } = "";
        public string? org_slug { get; set; }
        public string? request_id { get; set; }
        public string outcome { get; set; } = "";
        public string? details { get; set; }

        public AuditEntry ToRecord() => new(
            audit_id, SqliteSchema.ParseTimestamp(occurred_at), actor_type, actor_key_id, user_id, action,
            org_slug is null ? null : OrgSlug.From(org_slug), request_id, outcome,
            details is null ? null : JsonSerializer.Deserialize<Dictionary<string, object?>>(details));
    }
#pragma warning restore IDE1006, SA1300
}
