using System.Globalization;
using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>A write transaction on the central dataset; rolled back unless committed.</summary>
internal sealed class SqliteControlPlaneTransaction(SqliteConnection connection, SqliteTransaction transaction) : IControlPlaneTransaction
{
    private readonly SqliteTransactionScope _scope = new(connection, transaction);

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
                created = SqliteSchema.Timestamp(profile.CreatedAt), updated = SqliteSchema.Timestamp(profile.UpdatedAt),
            },
            cancellationToken);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
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
            new { org = profile.OrgSlug.Value, profile.CompanyName, profile.AdminEmail, profile.Status, profile.SubscriptionPlan, updated = SqliteSchema.Timestamp(profile.UpdatedAt) },
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
                org = q.OrgSlug.Value, date = q.UsageDate.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), q.PipelinesRunToday, q.PipelinesRunMonth,
                q.ConcurrentRunning, daily = SqliteSchema.Timestamp(q.LastResetDaily), monthly = SqliteSchema.Timestamp(q.LastResetMonthly),
            },
            cancellationToken);

    public Task InsertApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            INSERT INTO org_api_keys (org_api_key_id, org_slug, org_api_key_hash, encrypted_org_api_key, fingerprint, scopes, is_active,
                expires_at, created_at, last_used_at, revoked_at)
            VALUES (@OrgApiKeyId, @org, @KeyHash, @EncryptedKey, @Fingerprint, @scopes, @active, @expires, @created, NULL, NULL)
            """,
            new
            {
                key.OrgApiKeyId, org = key.OrgSlug.Value, key.KeyHash, key.EncryptedKey, key.Fingerprint, scopes = JsonSerializer.Serialize(key.Scopes),
                active = key.IsActive ? 1 : 0, expires = SqliteSchema.Timestamp(key.ExpiresAt), created = SqliteSchema.Timestamp(key.CreatedAt),
            },
            cancellationToken);

    public Task<int> ExpireApiKeysAsync(OrgSlug org, DateTimeOffset expiresAt, string? exceptKeyId, CancellationToken cancellationToken) =>
        ExecuteAsync(
            """
            UPDATE org_api_keys SET expires_at = @at
            WHERE org_slug = @org AND is_active = 1 AND revoked_at IS NULL AND org_api_key_id <> @except
              AND (expires_at IS NULL OR expires_at > @at)
            """,
            new { org = org.Value, at = SqliteSchema.Timestamp(expiresAt), except = exceptKeyId ?? string.Empty },
            cancellationToken);

    public async Task<bool> RevokeApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "UPDATE org_api_keys SET is_active = 0, revoked_at = @at WHERE org_slug = @org AND org_api_key_id = @keyId AND revoked_at IS NULL",
            new { org = org.Value, keyId, at = SqliteSchema.Timestamp(at) },
            cancellationToken) == 1;

    public Task<int> RevokeAllApiKeysAsync(OrgSlug org, DateTimeOffset at, CancellationToken cancellationToken) =>
        ExecuteAsync(
            "UPDATE org_api_keys SET is_active = 0, revoked_at = @at WHERE org_slug = @org AND revoked_at IS NULL",
            new { org = org.Value, at = SqliteSchema.Timestamp(at) },
            cancellationToken);

    public Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken) => InsertAuditAsync(connection, transaction, entry, cancellationToken);

    public Task CommitAsync(CancellationToken cancellationToken) => _scope.CommitAsync(cancellationToken);

    public ValueTask DisposeAsync() => _scope.DisposeAsync();

    internal static Task InsertAuditAsync(SqliteConnection connection, SqliteTransaction? transaction, AuditEntry e, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO org_audit_logs (audit_id, occurred_at, actor_type, actor_key_id, user_id, action, org_slug, request_id, outcome, details)
            VALUES (@AuditId, @at, @ActorType, @ActorKeyId, @UserId, @Action, @org, @RequestId, @Outcome, @details)
            """,
            new
            {
                e.AuditId, at = SqliteSchema.Timestamp(e.OccurredAt), e.ActorType, e.ActorKeyId, e.UserId, e.Action, org = e.OrgSlug?.Value,
                e.RequestId, e.Outcome, details = e.Details is null ? null : JsonSerializer.Serialize(e.Details),
            },
            transaction,
            cancellationToken: cancellationToken));

    private static object SubscriptionArgs(OrgSubscription s) => new
    {
        org = s.OrgSlug.Value, s.PlanName, s.Status, s.DailyLimit, s.MonthlyLimit, s.ConcurrentLimit,
        trial = SqliteSchema.Timestamp(s.TrialEndsAt), start = SqliteSchema.Timestamp(s.SubscriptionStart), updated = SqliteSchema.Timestamp(s.UpdatedAt),
    };

    private Task<int> ExecuteAsync(string sql, object args, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(sql, args, transaction, cancellationToken: cancellationToken));
}
