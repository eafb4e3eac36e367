using Convergence.Core.Organizations;

namespace Convergence.Core.Integrations;

/// <summary>
/// A row of <c>org_integration_credentials</c>: the credential only as KMS ciphertext bound to org, provider and
/// credential id, plus what is safe to show (name, status, last error, non-secret metadata).
/// </summary>
public sealed record IntegrationCredential(
    string CredentialId,
    OrgSlug OrgSlug,
    IntegrationProvider Provider,
    string CredentialName,
    string EncryptedCredential,
    string KeyVersion,
    string ValidationStatus,
    DateTimeOffset? LastValidatedAt,
    string? LastError,
    IReadOnlyDictionary<string, string> Metadata,
    bool IsActive,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);
