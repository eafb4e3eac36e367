using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Keys;
using Convergence.Core.Storage;

namespace Convergence.Core.Organizations;

/// <summary>
/// Root-only administration of an existing org: plan and status changes, offboarding and key lifecycle.
/// Every change is audited in the same transaction that makes it.
/// </summary>
public sealed class OrganizationAdministration(
    IControlPlaneStore store,
    IWarehouse warehouse,
    ApiKeyIssuer keyIssuer,
    DeploymentEnvironment environment,
    TimeProvider time)
{
    /// <summary>The longest overlap a rotation may give the old keys.</summary>
    public static readonly TimeSpan MaxGracePeriod = TimeSpan.FromDays(30);

    public async Task<OrgOverview> GetAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        if (!await store.IsBootstrappedAsync(cancellationToken))
        {
            throw BootstrapRequired();
        }

        return await store.GetOrganizationOverviewAsync(org, Today(), cancellationToken)
            ?? throw new ResourceNotFoundException("Organization", org.Value);
    }

    /// <summary>The error for any org operation before bootstrap.</summary>
    public static ConflictException BootstrapRequired() =>
        new("Bootstrap required", "The platform has not been bootstrapped: POST /api/v1/admin/bootstrap first.");

    public async Task<OrgOverview> UpdateAsync(OrgSlug org, string? planName, string? status, Actor actor, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        SubscriptionPlan? plan = null;
        if (planName is not null && !SubscriptionPlan.TryGet(planName, out plan))
        {
            errors["subscription_plan"] = [$"'{planName}' is not a plan; expected one of {SubscriptionPlan.Names}."];
        }

        if (status is not null && !OrgStatus.Settable.Contains(status))
        {
            errors["status"] = [$"'{status}' cannot be set; expected one of {string.Join(", ", OrgStatus.Settable)} (use DELETE to offboard)."];
        }

        if (planName is null && status is null)
        {
            errors["body"] = ["Give subscription_plan and/or status."];
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        var current = await GetAsync(org, cancellationToken);
        if (current.Profile.Status == OrgStatus.Deleted)
        {
            throw new ConflictException("Organization offboarded", $"Organization '{org}' was offboarded and cannot be changed.");
        }

        var now = time.GetUtcNow();
        var profile = current.Profile with
        {
            SubscriptionPlan = plan?.Name ?? current.Profile.SubscriptionPlan,
            Status = status ?? current.Profile.Status,
            UpdatedAt = now,
        };

        await using (var transaction = await store.BeginTransactionAsync(cancellationToken))
        {
            await transaction.UpdateOrganizationAsync(profile, cancellationToken);
            if (plan is not null && current.Subscription is { } subscription)
            {
                await transaction.UpdateSubscriptionAsync(
                    subscription with { PlanName = plan.Name, DailyLimit = plan.DailyLimit, MonthlyLimit = plan.MonthlyLimit, ConcurrentLimit = plan.ConcurrentLimit, UpdatedAt = now },
                    cancellationToken);
            }

            await transaction.RecordAuditAsync(
                actor.Audit("organization.update", org, AuditOutcome.Success, now, new Dictionary<string, object?>
                {
                    ["subscription_plan"] = new[] { current.Profile.SubscriptionPlan, profile.SubscriptionPlan },
                    ["status"] = new[] { current.Profile.Status, profile.Status },
                }),
                cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return await GetAsync(org, cancellationToken);
    }

    public async Task<OffboardResult> OffboardAsync(OrgSlug org, bool dropData, Actor actor, CancellationToken cancellationToken)
    {
        var current = await GetAsync(org, cancellationToken);
        var now = time.GetUtcNow();
        int revoked;
        await using (var transaction = await store.BeginTransactionAsync(cancellationToken))
        {
            await transaction.UpdateOrganizationAsync(current.Profile with { Status = OrgStatus.Deleted, UpdatedAt = now }, cancellationToken);
            revoked = await transaction.RevokeAllApiKeysAsync(org, now, cancellationToken);
            await transaction.RecordAuditAsync(
                actor.Audit("organization.offboard", org, AuditOutcome.Success, now, new Dictionary<string, object?> { ["keys_revoked"] = revoked, ["drop_data"] = dropData }),
                cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        // Dropping data is the last step: if it fails the org is already offboarded and a retry drops it.
        var dataset = DatasetRef.ForOrg(org, environment);
        var dropped = dropData && await warehouse.DatasetExistsAsync(dataset, cancellationToken);
        if (dropped)
        {
            await warehouse.DropDatasetAsync(dataset, cancellationToken);
        }

        return new OffboardResult(org, OrgStatus.Deleted, revoked, dataset.Name, dropped);
    }

    /// <summary>
    /// Issues a new key. With <paramref name="rotate"/>, the org's other usable keys expire after
    /// <paramref name="gracePeriod"/> (immediately when zero).
    /// </summary>
    public async Task<IssuedKeyResult> IssueKeyAsync(OrgSlug org, bool rotate, TimeSpan gracePeriod, DateTimeOffset? expiresAt, Actor actor, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var errors = new Dictionary<string, string[]>();
        if (gracePeriod < TimeSpan.Zero || gracePeriod > MaxGracePeriod)
        {
            errors["grace_period_seconds"] = [$"must be between 0 and {(long)MaxGracePeriod.TotalSeconds}."];
        }

        if (expiresAt is { } e && e <= now)
        {
            errors["expires_at"] = ["must be in the future."];
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        var current = await GetAsync(org, cancellationToken);
        if (current.Profile.Status == OrgStatus.Deleted)
        {
            throw new ConflictException("Organization offboarded", $"Organization '{org}' was offboarded; it cannot get new keys.");
        }

        var issued = await keyIssuer.IssueAsync(org, expiresAt, cancellationToken);
        DateTimeOffset? previousExpireAt = rotate ? now + gracePeriod : null;
        var previousAffected = 0;
        await using (var transaction = await store.BeginTransactionAsync(cancellationToken))
        {
            await transaction.InsertApiKeyAsync(issued.Record, cancellationToken);
            if (previousExpireAt is { } at)
            {
                previousAffected = await transaction.ExpireApiKeysAsync(org, at, issued.Record.OrgApiKeyId, cancellationToken);
            }

            await transaction.RecordAuditAsync(
                actor.Audit(rotate ? "api_key.rotate" : "api_key.issue", org, AuditOutcome.Success, now, new Dictionary<string, object?>
                {
                    ["org_api_key_id"] = issued.Record.OrgApiKeyId,
                    ["fingerprint"] = issued.Record.Fingerprint,
                    ["previous_keys_affected"] = previousAffected,
                    ["grace_period_seconds"] = (long)gracePeriod.TotalSeconds,
                }),
                cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return new IssuedKeyResult(issued, previousAffected, previousAffected > 0 ? previousExpireAt : null);
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListKeysAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        _ = await GetAsync(org, cancellationToken);
        return await store.ListApiKeysAsync(org, cancellationToken);
    }

    public async Task RevokeKeyAsync(OrgSlug org, string keyId, Actor actor, CancellationToken cancellationToken)
    {
        _ = await GetAsync(org, cancellationToken);
        var now = time.GetUtcNow();
        await using var transaction = await store.BeginTransactionAsync(cancellationToken);
        if (!await transaction.RevokeApiKeyAsync(org, keyId, now, cancellationToken))
        {
            throw new ResourceNotFoundException("API key", keyId);
        }

        await transaction.RecordAuditAsync(
            actor.Audit("api_key.revoke", org, AuditOutcome.Success, now, new Dictionary<string, object?> { ["org_api_key_id"] = keyId }),
            cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private DateOnly Today() => DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
}

/// <summary>The outcome of offboarding.</summary>
public sealed record OffboardResult(OrgSlug OrgSlug, string Status, int KeysRevoked, string DatasetId, bool DataDropped);

/// <summary>A new key, and what happened to the org's previous keys.</summary>
public sealed record IssuedKeyResult(IssuedApiKey Issued, int PreviousKeysAffected, DateTimeOffset? PreviousKeysExpireAt);
