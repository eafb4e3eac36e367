using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Dapper;
using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>A write transaction on the central dataset's schema; rolled back unless committed.</summary>
internal sealed class PostgresControlPlaneTransaction(NpgsqlConnection connection, NpgsqlTransaction transaction) : IControlPlaneTransaction
{
    public async Task InsertOrganizationAsync(OrgProfile profile, CancellationToken cancellationToken)
    {
        try
        {
            await ExecuteAsync(
                """
                INSERT INTO org_profiles (org_slug, company_name, admin_email, status, subscription_plan, dataset_id, created_at, updated_at)
                VALUES (@org, @CompanyName, @AdminEmail, @Status, @SubscriptionPlan, @DatasetId, @created, @updated)
                """,
                new
                {
                    org = profile.OrgSlug.Value, profile.CompanyName, profile.AdminEmail, profile.Status, profile.SubscriptionPlan, profile.DatasetId,
                    created = PostgresValues.Timestamp(profile.CreatedAt), updated = PostgresValues.Timestamp(profile.UpdatedAt),
                },
                cancellationToken);
        }
        catch (Exception ex) when (PostgresValues.IsUniqueViolation(ex))
        {
            throw new DuplicateRowException("org_profiles", ex);
        }
    }

    public async Task<bool> UpdateOrganizationAsync(OrgProfile profile, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            """
            UPDATE org_profiles SET company_name = @CompanyName, admin_email = @AdminEmail, status = @Status,
                subscription_plan = @SubscriptionPlan, updated_at = @updated
            WHERE org_slug = @org
            """,
            new { org = profile.OrgSlug.Value, profile.CompanyName, profile.AdminEmail, profile.Status, profile.SubscriptionPlan, updated = PostgresValues.Timestamp(profile.UpdatedAt) },
            cancellationToken) == 1;

    public Task InsertSubscriptionAsync(OrgSubscription s, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            INSERT INTO org_subscriptions (org_slug, plan_name, status, daily_limit, monthly_limit, concurrent_limit, trial_ends_at, subscription_start, updated_at)
            VALUES (@org, @PlanName, @Status, @DailyLimit, @MonthlyLimit, @ConcurrentLimit, @trial, @start, @updated)
            """,
            SubscriptionArgs(s),
            cancellationToken);

    public Task UpdateSubscriptionAsync(OrgSubscription s, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            UPDATE org_subscriptions SET plan_name = @PlanName, status = @Status, daily_limit = @DailyLimit, monthly_limit = @MonthlyLimit,
                concurrent_limit = @ConcurrentLimit, trial_ends_at = @trial, updated_at = @updated
            WHERE org_slug = @org
            """,
            SubscriptionArgs(s),
            cancellationToken);

    public Task InsertUsageQuotaAsync(OrgUsageQuota q, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            INSERT INTO org_usage_quotas (org_slug, usage_date, pipelines_run_today, pipelines_run_month, concurrent_running, last_reset_daily, last_reset_monthly)
            VALUES (@org, @date, @PipelinesRunToday, @PipelinesRunMonth, @ConcurrentRunning, @daily, @monthly)
            """,
            new
            {
                org = q.OrgSlug.Value, date = PostgresValues.Date(q.UsageDate), q.PipelinesRunToday, q.PipelinesRunMonth,
                q.ConcurrentRunning, daily = PostgresValues.Timestamp(q.LastResetDaily), monthly = PostgresValues.Timestamp(q.LastResetMonthly),
            },
            cancellationToken);

    public Task InsertApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            INSERT INTO org_api_keys (org_api_key_id, org_slug, org_api_key_hash, encrypted_org_api_key, fingerprint, scopes, is_active,
                expires_at, created_at, last_used_at, revoked_at)
            VALUES (@OrgApiKeyId, @org, @KeyHash, @EncryptedKey, @Fingerprint, CAST(@scopes AS jsonb), @IsActive, @expires, @created, NULL, NULL)
            """,
            new
            {
                key.OrgApiKeyId, org = key.OrgSlug.Value, key.KeyHash, key.EncryptedKey, key.Fingerprint, scopes = JsonSerializer.Serialize(key.Scopes),
                key.IsActive, expires = PostgresValues.Timestamp(key.ExpiresAt), created = PostgresValues.Timestamp(key.CreatedAt),
            },
            cancellationToken);

    public Task<int> ExpireApiKeysAsync(OrgSlug org, DateTimeOffset expiresAt, string? exceptKeyId, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            UPDATE org_api_keys SET expires_at = @at
            WHERE org_slug = @org AND is_active AND revoked_at IS NULL AND org_api_key_id <> @except
              AND (expires_at IS NULL OR expires_at > @at)
            """,
            new { org = org.Value, at = PostgresValues.Timestamp(expiresAt), except = exceptKeyId ?? string.Empty },
            cancellationToken);

    public async Task<bool> RevokeApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE org_api_keys SET is_active = false, revoked_at = @at WHERE org_slug = @org AND org_api_key_id = @keyId AND revoked_at IS NULL",
            new { org = org.Value, keyId, at = PostgresValues.Timestamp(at) },
            cancellationToken) == 1;

    public Task<int> RevokeAllApiKeysAsync(OrgSlug org, DateTimeOffset at, CancellationToken cancellationToken) =>
        ExecuteAsync(
            "UPDATE org_api_keys SET is_active = false, revoked_at = @at WHERE org_slug = @org AND revoked_at IS NULL",
            new { org = org.Value, at = PostgresValues.Timestamp(at) },
            cancellationToken);

    public Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken) => InsertAuditAsync(connection, transaction, entry, cancellationToken);

    public Task CommitAsync(CancellationToken cancellationToken) => transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        // Disposing an uncompleted NpgsqlTransaction rolls it back (quietly, should the connection be broken).
        await transaction.DisposeAsync();
        await connection.DisposeAsync();
    }

    internal static Task InsertAuditAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, AuditEntry e, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_audit_logs (audit_id, occurred_at, actor_type, actor_key_id, user_id, action, org_slug, request_id, outcome, details)
            VALUES (@AuditId, @at, @ActorType, @ActorKeyId, @UserId, @Action, @org, @RequestId, @Outcome, CAST(@details AS jsonb))
            """,
            new
            {
                e.AuditId, at = PostgresValues.Timestamp(e.OccurredAt), e.ActorType, e.ActorKeyId, e.UserId, e.Action, org = e.OrgSlug?.Value,
                e.RequestId, e.Outcome, details = e.Details is null ? null : JsonSerializer.Serialize(e.Details),
            },
            transaction,
            cancellationToken: cancellationToken));

    private static object SubscriptionArgs(OrgSubscription s) => new
    {
        org = s.OrgSlug.Value, s.PlanName, s.Status, s.DailyLimit, s.MonthlyLimit, s.ConcurrentLimit,
        trial = PostgresValues.Timestamp(s.TrialEndsAt), start = PostgresValues.Timestamp(s.SubscriptionStart), updated = PostgresValues.Timestamp(s.UpdatedAt),
    };

    private Task<int> ExecuteAsync(string sql, object args, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(sql, args, transaction, cancellationToken: cancellationToken));
}
