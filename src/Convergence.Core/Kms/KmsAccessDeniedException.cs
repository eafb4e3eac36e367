namespace Convergence.Core.Kms;

/// <summary>
/// The KMS refused this service's credentials for a key (HTTP 401/403, or the token server refused the account).
/// Not retried: an operator must fix the credentials or the key's IAM policy.
/// </summary>
/// <remarks>The message names the key and the status, never a token or key material.</remarks>
public sealed class KmsAccessDeniedException(string message, int? statusCode = null, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The HTTP status the KMS or token server answered, when there was one.</summary>
    public int? StatusCode { get; } = statusCode;
}
