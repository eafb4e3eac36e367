namespace Convergence.Core.Kms;

/// <summary>
/// Encrypts and decrypts small secrets (API keys, provider credentials) bound to the context they belong to.
/// </summary>
/// <remarks>
/// <para>Implementations use authenticated encryption with <see cref="KmsContext"/> as associated data, so a
/// ciphertext copied to another org, purpose or subject fails to decrypt.</para>
/// <para>The returned ciphertext is an opaque, self-describing string (it records the key version), safe to store
/// in a text column. Implementations are thread-safe.</para>
/// </remarks>
public interface IKeyManagementService
{
    /// <summary>A short name for logs and health checks, such as <c>local</c> or <c>gcp</c>.</summary>
    string Kind { get; }

    Task<string> EncryptAsync(ReadOnlyMemory<byte> plaintext, KmsContext context, CancellationToken cancellationToken);

    /// <exception cref="KmsDecryptionException">The ciphertext was tampered with, or belongs to another context.</exception>
    Task<byte[]> DecryptAsync(string ciphertext, KmsContext context, CancellationToken cancellationToken);

    /// <summary>Checks the KMS can be used (key material loaded, service reachable).</summary>
    Task<bool> IsReadyAsync(CancellationToken cancellationToken);
}
