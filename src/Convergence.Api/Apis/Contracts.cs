using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Processors.Setup;

namespace Convergence.Api.Apis;

// Request and response bodies. JSON names are snake_case (configured once); unknown request fields are rejected.
// Request bodies use init properties rather than positional records so JSON type errors name the field's type.

public sealed record BootstrapBody
{
    public bool? ForceRecreateDataset { get; init; }

    public bool? ForceRecreateTables { get; init; }
}

public sealed record BootstrapResponse(
    string Status, bool DatasetCreated, IReadOnlyList<string> TablesCreated, IReadOnlyList<string> TablesExisting, string Message, string PipelineLoggingId);

public sealed record OrganizationBody
{
    public string? OrgSlug { get; init; }

    public string? CompanyName { get; init; }

    public string? AdminEmail { get; init; }

    public string? SubscriptionPlan { get; init; }

    public OrganizationRequest ToRequest() => new(OrgSlug, CompanyName, AdminEmail, SubscriptionPlan);
}

public sealed record DryRunResponse(
    string? OrgSlug, IReadOnlyList<DryRunCheck> Checks, int ChecksPassed, int ChecksFailed, IReadOnlyList<string> Errors, bool ReadyForOnboarding, string PipelineLoggingId)
{
    public static DryRunResponse From(DryRunReport r, string runId) =>
        new(r.OrgSlug, r.Checks, r.ChecksPassed, r.ChecksFailed, r.Errors, r.ReadyForOnboarding, runId);
}

public sealed record SubscriptionResponse(
    string PlanName, string Status, int DailyLimit, int MonthlyLimit, int ConcurrentLimit, DateTimeOffset? TrialEndsAt, DateTimeOffset SubscriptionStart)
{
    public static SubscriptionResponse From(OrgSubscription s) =>
        new(s.PlanName, s.Status, s.DailyLimit, s.MonthlyLimit, s.ConcurrentLimit, s.TrialEndsAt, s.SubscriptionStart);
}

public sealed record OnboardResponse(
    string OrgSlug,
    string CompanyName,
    string AdminEmail,
    string Status,
    string ApiKey,
    string OrgApiKeyId,
    string ApiKeyFingerprint,
    string DatasetId,
    bool DatasetCreated,
    IReadOnlyList<string> TablesCreated,
    SubscriptionResponse Subscription,
    string PipelineLoggingId,
    ValidationRunResponse ValidationRun,
    string Message);

/// <summary>The example pipeline onboarding runs to prove the dataset works (its id is null when it could not start).</summary>
public sealed record ValidationRunResponse(string Pipeline, string? PipelineLoggingId, string Status, string? Error);

public sealed record UsageResponse(DateOnly UsageDate, int PipelinesRunToday, int PipelinesRunMonth, int ConcurrentRunning);

public sealed record OrganizationResponse(
    string OrgSlug, string CompanyName, string AdminEmail, string Status, string SubscriptionPlan, string DatasetId,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, SubscriptionResponse? Subscription, UsageResponse? Usage)
{
    public static OrganizationResponse From(OrgOverview o) => new(
        o.Profile.OrgSlug.Value, o.Profile.CompanyName, o.Profile.AdminEmail, o.Profile.Status, o.Profile.SubscriptionPlan, o.Profile.DatasetId,
        o.Profile.CreatedAt, o.Profile.UpdatedAt,
        o.Subscription is null ? null : SubscriptionResponse.From(o.Subscription),
        o.Quota is null ? null : new UsageResponse(o.Quota.UsageDate, o.Quota.PipelinesRunToday, o.Quota.PipelinesRunMonth, o.Quota.ConcurrentRunning));
}

public sealed record OrganizationPatchBody
{
    public string? SubscriptionPlan { get; init; }

    public string? Status { get; init; }
}

public sealed record OffboardResponse(string OrgSlug, string Status, int KeysRevoked, string DatasetId, bool DataDropped);

public sealed record ApiKeyIssueBody
{
    public bool? Rotate { get; init; }

    public long? GracePeriodSeconds { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }
}

public sealed record ApiKeyIssuedResponse(
    string OrgSlug, string ApiKey, string OrgApiKeyId, string Fingerprint, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt,
    int PreviousKeysAffected, DateTimeOffset? PreviousKeysExpireAt, string Message);

/// <summary>A key as lists show it: never the secret, its hash or its ciphertext.</summary>
public sealed record ApiKeyResponse(
    string OrgApiKeyId, string Fingerprint, IReadOnlyList<string> Scopes, bool IsActive, bool IsUsable, DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt)
{
    public static ApiKeyResponse From(ApiKeyRecord k, DateTimeOffset now) =>
        new(k.OrgApiKeyId, k.Fingerprint, k.Scopes, k.IsActive, k.IsUsableAt(now), k.CreatedAt, k.ExpiresAt, k.LastUsedAt, k.RevokedAt);
}

public sealed record ApiKeyListResponse(string OrgSlug, IReadOnlyList<ApiKeyResponse> Keys);

public sealed record ApiKeyRevokedResponse(string OrgSlug, string OrgApiKeyId, bool Revoked);
