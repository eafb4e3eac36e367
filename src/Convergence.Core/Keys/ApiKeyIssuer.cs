using System.Text;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;

namespace Convergence.Core.Keys;

/// <summary>Creates org API keys: the plain key for the caller, and the record to store (hash, encrypted copy).</summary>
public sealed class ApiKeyIssuer(IKeyManagementService kms, TimeProvider time)
{
    public async Task<IssuedApiKey> IssueAsync(OrgSlug org, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var key = OrgApiKey.Generate(org);
        var id = "key_" + Guid.CreateVersion7(now).ToString("N");
        var encrypted = await kms.EncryptAsync(Encoding.UTF8.GetBytes(key.Secret), KmsContext.ForOrgApiKey(org, id), cancellationToken);
        var record = new ApiKeyRecord(id, org, key.Hash, encrypted, key.Fingerprint, ApiKeyRecord.DefaultScopes, true, expiresAt, now, null, null);
        return new IssuedApiKey(key, record);
    }
}

/// <summary>A freshly issued key: <see cref="Key"/> is shown once, <see cref="Record"/> is stored.</summary>
public sealed record IssuedApiKey(OrgApiKey Key, ApiKeyRecord Record);
