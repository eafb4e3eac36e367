namespace Convergence.Core.Kms;

/// <summary>A ciphertext could not be decrypted: tampered, truncated, or bound to another context.</summary>
public sealed class KmsDecryptionException(string message, Exception? inner = null) : Exception(message, inner);
