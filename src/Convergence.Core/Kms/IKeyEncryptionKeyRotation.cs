namespace Convergence.Core.Kms;

/// <summary>
/// A KMS whose key-encryption keys Convergence rotates itself (the local key ring). Managed services such as Google
/// Cloud KMS rotate their keys on their side and do not implement this.
/// </summary>
/// <remarks>
/// After <see cref="Rotate"/>, new ciphertexts are wrapped with the new primary version and every older version keeps
/// decrypting, so rotation needs no downtime; <see cref="RewrapAsync"/> then moves stored ciphertexts to the primary.
/// </remarks>
public interface IKeyEncryptionKeyRotation
{
    /// <summary>The version new ciphertexts are wrapped with.</summary>
    int PrimaryVersion { get; }

    /// <summary>Adds a new key-encryption key version, makes it primary and returns it; older versions are kept.</summary>
    int Rotate();

    /// <summary>
    /// Re-wraps the data key of <paramref name="ciphertext"/> with the primary version, leaving the payload as it is;
    /// returns the same string when it is already on the primary version.
    /// </summary>
    /// <exception cref="KmsDecryptionException">The ciphertext was tampered with, or belongs to another context.</exception>
    Task<string> RewrapAsync(string ciphertext, KmsContext context, CancellationToken cancellationToken);
}
