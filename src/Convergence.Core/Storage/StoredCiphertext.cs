using Convergence.Core.Organizations;

namespace Convergence.Core.Storage;

/// <summary>The control-plane tables that hold KMS ciphertexts.</summary>
public enum CiphertextTable
{
    /// <summary><c>org_integration_credentials.encrypted_credential</c>, keyed by <c>credential_id</c>.</summary>
    IntegrationCredentials,

    /// <summary><c>org_api_keys.encrypted_org_api_key</c>, keyed by <c>org_api_key_id</c>.</summary>
    OrgApiKeys,
}

/// <summary>
/// One stored ciphertext with what its KMS context is built from: the org, the record id and, for credentials, the
/// provider. Active and inactive rows alike, so an old key version can be retired once nothing uses it.
/// </summary>
public sealed record StoredCiphertext(CiphertextTable Table, string RecordId, OrgSlug Org, string? Provider, string Ciphertext);
