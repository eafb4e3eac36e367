using Convergence.Core.Organizations;

namespace Convergence.Core.Keys;

/// <summary>A row of <c>org_api_keys</c>. Holds no plain secret.</summary>
public sealed record ApiKeyRecord(
    string OrgApiKeyId,
    OrgSlug OrgSlug,
    string KeyHash,
    string EncryptedKey,
    string Fingerprint,
    IReadOnlyList<string> Scopes,
    bool IsActive,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LastUsedAt,
    DateTimeOffset? RevokedAt)
{
    public static readonly IReadOnlyList<string> DefaultScopes = ["org:*"];

    /// <summary>Whether the key authenticates at <paramref name="now"/>.</summary>
    public bool IsUsableAt(DateTimeOffset now) => IsActive && RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);
}

/// <summary>What an API key lookup returns: the key and its org's status, in one read.</summary>
public sealed record ApiKeyLookup(ApiKeyRecord Key, string OrgStatus);
