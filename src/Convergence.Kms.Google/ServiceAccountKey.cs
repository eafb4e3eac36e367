using System.Text.Json;

namespace Convergence.Kms.Google;

/// <summary>
/// The fields of a service-account key file this client uses, parsed by hand so that only
/// <c>"type": "service_account"</c> is accepted: <c>external_account</c> and other credential types can make an auth
/// library fetch URLs or read files named in the JSON.
/// </summary>
internal sealed record ServiceAccountKey(string ClientEmail, string PrivateKey, string? PrivateKeyId, string? ProjectId)
{
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

            return new ServiceAccountKey(email, privateKey, String(root, "private_key_id"), String(root, "project_id"));
        }
    }

    /// <summary>Never prints the private key.</summary>
    public override string ToString() => $"ServiceAccountKey {{ ClientEmail = {ClientEmail}, PrivateKeyId = {PrivateKeyId} }}";

    private static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
