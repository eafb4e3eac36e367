using System.Text.RegularExpressions;

namespace Convergence.Kms.Google;

/// <summary>How to reach one Cloud KMS symmetric key.</summary>
/// <param name="KeyName">The CryptoKey resource name, <c>projects/{p}/locations/{l}/keyRings/{r}/cryptoKeys/{k}</c>.</param>
/// <param name="BaseUrl">The Cloud KMS endpoint, normally <c>https://cloudkms.googleapis.com</c>.</param>
/// <param name="ServiceAccountJson">The service-account key file's JSON text (<c>"type": "service_account"</c>).</param>
/// <param name="TokenUrl">The OAuth token endpoint, normally <c>https://oauth2.googleapis.com/token</c>.</param>
/// <param name="Timeout">The limit on each HTTP attempt (token or KMS call).</param>
/// <param name="MaxRetries">Retries of a 429, 5xx or timed-out call before <see cref="Core.Errors.TransientException"/> is thrown.</param>
public sealed partial record GoogleCloudKmsOptions(
    string KeyName, Uri BaseUrl, string ServiceAccountJson, Uri TokenUrl, TimeSpan Timeout, int MaxRetries = 2)
{
    /// <summary>The default Cloud KMS endpoint.</summary>
    public static readonly Uri DefaultBaseUrl = new("https://cloudkms.googleapis.com");

    /// <summary>The default OAuth token endpoint.</summary>
    public static readonly Uri DefaultTokenUrl = new("https://oauth2.googleapis.com/token");

    /// <summary>The OAuth scope Cloud KMS calls need.</summary>
    public const string Scope = "https://www.googleapis.com/auth/cloudkms";

    /// <summary>Whether <paramref name="keyName"/> is a CryptoKey resource name (not a version, not a key ring).</summary>
    public static bool IsValidKeyName(string? keyName) => keyName is not null && KeyNamePattern().IsMatch(keyName);

    /// <summary>Whether <paramref name="url"/> is an absolute http or https URL.</summary>
    public static bool IsHttpUrl(Uri? url) => url is { IsAbsoluteUri: true } && url.Scheme is "http" or "https";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (!IsValidKeyName(KeyName))
        {
            throw new ArgumentException($"KeyName '{KeyName}' is not of the form projects/*/locations/*/keyRings/*/cryptoKeys/*.", nameof(KeyName));
        }

        if (!IsHttpUrl(BaseUrl))
        {
            throw new ArgumentException($"BaseUrl '{BaseUrl}' must be an absolute http or https URL.", nameof(BaseUrl));
        }

        if (!IsHttpUrl(TokenUrl))
        {
            throw new ArgumentException($"TokenUrl '{TokenUrl}' must be an absolute http or https URL.", nameof(TokenUrl));
        }

        if (Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("Timeout must be positive.", nameof(Timeout));
        }

        if (MaxRetries is < 0 or > 10)
        {
            throw new ArgumentException("MaxRetries must be between 0 and 10.", nameof(MaxRetries));
        }
    }

    // Segment ids: letters, digits, '-' and '_' (locations and key rings); no '/' so a version name does not match.
    [GeneratedRegex("^projects/[A-Za-z0-9_.:-]+/locations/[A-Za-z0-9_-]+/keyRings/[A-Za-z0-9_-]+/cryptoKeys/[A-Za-z0-9_-]+$", RegexOptions.CultureInvariant)]
    private static partial Regex KeyNamePattern();
}
