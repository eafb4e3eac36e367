using Convergence.Core.Errors;
using Convergence.Core.Integrations;

namespace Convergence.Processors.ProviderApis;

/// <summary>
/// The provider refused the organization's credential (401/403): not retried; the fetching step marks the integration
/// INVALID. The message carries the provider's reason with any key-like text redacted, never the credential.
/// </summary>
public sealed class ProviderCredentialRejectedException(IntegrationProvider provider, int status, string message)
    : ConvergenceException(message)
{
    public IntegrationProvider Provider { get; } = provider;

    public int HttpStatus { get; } = status;

    public override string Title => "Provider refused the credential";
}

/// <summary>
/// The provider answered in a way a retry will not fix: another 4xx, or a body that stayed malformed (truncated JSON,
/// missing <c>data</c>) after one retry. The message names the endpoint and the page.
/// </summary>
public sealed class ProviderResponseException(string message, Exception? inner = null) : ConvergenceException(message, inner)
{
    public override string Title => "Unexpected provider response";
}

/// <summary>A 429, 5xx, timeout or dropped connection on one request; retried by <see cref="ProviderApiClient"/>, then by the step.</summary>
public sealed class ProviderUnavailableException(string message, Exception? inner = null, TimeSpan? retryAfter = null)
    : TransientException(message, inner, retryAfter);

/// <summary>A body that did not parse or lacked the envelope; retried once by <see cref="ProviderApiClient"/>.</summary>
internal sealed class ProviderMalformedResponseException(string message, Exception? inner = null) : Exception(message, inner);
