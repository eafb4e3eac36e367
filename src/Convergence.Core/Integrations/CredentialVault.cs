using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.Core.Integrations;

/// <summary>
/// Stores and recovers provider credentials: encrypted with the KMS under associated data binding org, provider and
/// credential id (a ciphertext moved to another org, provider or row does not decrypt), one active credential per org
/// and provider. Plaintext exists only in the caller's memory.
/// </summary>
public sealed class CredentialVault(IControlPlaneStore store, IKeyManagementService kms, TimeProvider time)
{
    /// <summary>Encrypts and stores <paramref name="secret"/>, replacing the org's active credential for the provider.</summary>
    public async Task<IntegrationCredential> StoreAsync(
        OrgSlug org,
        IntegrationProvider provider,
        string credentialName,
        ReadOnlyMemory<byte> secret,
        IReadOnlyDictionary<string, string> metadata,
        string validationStatus,
        string? lastError,
        CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var id = "cred_" + Guid.CreateVersion7(now).ToString("N");
        var ciphertext = await kms.EncryptAsync(secret, Context(org, provider, id), cancellationToken);
        var credential = new IntegrationCredential(
            id, org, provider, credentialName, ciphertext, kms.Kind, validationStatus,
            validationStatus == CredentialStatus.Pending ? null : now, lastError, metadata, true, now, now);
        await store.ReplaceCredentialAsync(credential, cancellationToken);
        return credential;
    }

    /// <summary>Decrypts the org's active credential for the provider, or returns null when there is none.</summary>
    /// <exception cref="KmsDecryptionException">The stored ciphertext does not belong to this org, provider and row.</exception>
    public async Task<byte[]?> DecryptAsync(OrgSlug org, IntegrationProvider provider, CancellationToken cancellationToken)
    {
        var credential = await store.FindActiveCredentialAsync(org, provider, cancellationToken);
        return credential is null ? null : await DecryptAsync(credential, cancellationToken);
    }

    /// <summary>Decrypts a stored credential row.</summary>
    /// <exception cref="KmsDecryptionException">The ciphertext does not belong to this row's org, provider and id.</exception>
    public Task<byte[]> DecryptAsync(IntegrationCredential credential, CancellationToken cancellationToken) =>
        kms.DecryptAsync(credential.EncryptedCredential, Context(credential.OrgSlug, credential.Provider, credential.CredentialId), cancellationToken);

    public static KmsContext Context(OrgSlug org, IntegrationProvider provider, string credentialId) => new(org, provider.StoredName, credentialId);
}
