using System.Security.Cryptography;
using System.Text.Json;
using Google.Apis.Auth.OAuth2;
using Google.Apis.Http;

namespace Convergence.Kms.Google;

/// <summary>
/// The fields of a service-account key file this client uses, parsed by hand so that only
/// <c>"type": "service_account"</c> is accepted: <c>external_account</c> and other credential types can make an auth
/// library fetch URLs or read files named in the JSON. Tenants' keys are untrusted input (SPEC §10.6): fields that
/// point an auth library at files, commands or other token endpoints are refused, and <see cref="RequireTokenUri"/>
/// pins where the key may be exchanged for a token.
/// </summary>
public sealed record ServiceAccountKey(string ClientEmail, string PrivateKey, string? PrivateKeyId, string? ProjectId, string? TokenUri)
{
    /// <summary>Google's OAuth token endpoint, the only <c>token_uri</c> a real service-account key carries.</summary>
    public const string GoogleTokenUri = "https://oauth2.googleapis.com/token";

    /// <summary>Fields of other credential types that make auth libraries read files, run commands or call URLs.</summary>
    private static readonly string[] ForeignSourceFields =
    [
        "credential_source", "service_account_impersonation_url", "token_url", "subject_token_type",
        "workforce_pool_user_project", "executable", "token_info_url", "audience",
    ];

    /// <summary>Parses and checks <paramref name="json"/>.</summary>
    /// <exception cref="FormatException">Not JSON, not a service account, or a required field is missing. The message
    /// never quotes the private key.</exception>
    public static ServiceAccountKey Parse(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            // The parser's message can quote the text around the error, which may be key material.
            throw new FormatException($"The service-account key is not valid JSON (line {ex.LineNumber + 1}).");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException("The service-account key must be a JSON object.");
            }

            var type = String(root, "type");
            if (type != "service_account")
            {
                throw new FormatException($"The credential type is '{type ?? "(missing)"}'; only \"service_account\" keys are accepted.");
            }

            var foreign = ForeignSourceFields.FirstOrDefault(f => root.TryGetProperty(f, out _));
            if (foreign is not null)
            {
                throw new FormatException($"The service-account key has a '{foreign}' field, which only other credential types carry; it is refused.");
            }

            var universe = String(root, "universe_domain");
            if (universe is not null && universe != "googleapis.com")
            {
                throw new FormatException($"The service-account key is for universe '{universe}'; only googleapis.com is supported.");
            }

            var email = String(root, "client_email");
            if (string.IsNullOrWhiteSpace(email) || !email.Contains('@', StringComparison.Ordinal))
            {
                throw new FormatException("The service-account key has no client_email.");
            }

            var privateKey = String(root, "private_key");
            if (string.IsNullOrWhiteSpace(privateKey) || !privateKey.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
            {
                throw new FormatException($"The service-account key for {email} has no PEM private_key.");
            }

            return new ServiceAccountKey(email, privateKey, String(root, "private_key_id"), String(root, "project_id"), String(root, "token_uri"));
        }
    }

    /// <summary>
    /// The key's <c>token_uri</c> when it is one of <paramref name="allowed"/> (Google's, or a configured test endpoint);
    /// a missing <c>token_uri</c> means Google's.
    /// </summary>
    /// <exception cref="FormatException">The key names another token endpoint.</exception>
    public Uri RequireTokenUri(IReadOnlyCollection<Uri> allowed)
    {
        var uri = TokenUri ?? GoogleTokenUri;
        var match = allowed.FirstOrDefault(a => string.Equals(a.AbsoluteUri.TrimEnd('/'), uri.TrimEnd('/'), StringComparison.Ordinal));
        return match ?? throw new FormatException(
            $"The service-account key's token_uri '{(uri.Length > 100 ? uri[..100] : uri)}' is not an allowed token endpoint; only {string.Join(" or ", allowed.Select(a => a.AbsoluteUri))}.");
    }

    /// <summary>
    /// A Google.Apis.Auth credential that signs JWT grants with this key and exchanges them at <paramref name="tokenUrl"/>
    /// (never a URL taken from the key), with no back-off of its own: callers own their retries.
    /// </summary>
    /// <exception cref="FormatException">The private key is not a PKCS#8 RSA key; the message never quotes it.</exception>
    public ServiceAccountCredential CreateCredential(Uri tokenUrl, string scope, TimeProvider time)
    {
        try
        {
            return new ServiceAccountCredential(
                new ServiceAccountCredential.Initializer(ClientEmail, tokenUrl.AbsoluteUri)
                {
                    Scopes = [scope],
                    KeyId = PrivateKeyId,
                    ProjectId = ProjectId,
                    Clock = new TimeProviderClock(time),
                    DefaultExponentialBackOffPolicy = ExponentialBackOffPolicy.None,
                }.FromPrivateKey(PrivateKey));
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException or InvalidOperationException)
        {
            // Never the exception's message: parsers can quote the PEM.
            throw new FormatException($"The private_key of service account {ClientEmail} is not a valid PKCS#8 RSA key.");
        }
    }

    /// <summary>Never prints the private key.</summary>
    public override string ToString() => $"ServiceAccountKey {{ ClientEmail = {ClientEmail}, PrivateKeyId = {PrivateKeyId} }}";

    private static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
