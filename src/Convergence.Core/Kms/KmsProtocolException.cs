namespace Convergence.Core.Kms;

/// <summary>
/// The KMS answered something this client cannot use: malformed JSON, a missing field, or an unexpected status.
/// </summary>
public sealed class KmsProtocolException(string message, int? statusCode = null, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The HTTP status of the offending response, when there was one.</summary>
    public int? StatusCode { get; } = statusCode;
}
