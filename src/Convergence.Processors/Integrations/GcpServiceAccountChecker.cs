using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Kms.Google;
using Google;
using Google.Apis.Auth.OAuth2;
using Google.Apis.Auth.OAuth2.Responses;
using Google.Apis.Http;

namespace Convergence.Processors.Integrations;

/// <summary>
/// Where tenant service-account keys may be exchanged for tokens: Google's endpoint, plus the configured test endpoint
/// (<c>GCP_TOKEN_URL</c>) when one is set. Any other <c>token_uri</c> in a tenant's key is refused.
/// </summary>
public sealed record GcpTokenEndpoint(Uri TokenUrl, TimeSpan Timeout)
{
    public const string Scope = "https://www.googleapis.com/auth/cloud-platform.read-only";

    public static GcpTokenEndpoint Default { get; } = new(new Uri(ServiceAccountKey.GoogleTokenUri), TimeSpan.FromSeconds(10));

    public IReadOnlyCollection<Uri> AllowedTokenUris =>
        TokenUrl.AbsoluteUri.TrimEnd('/') == ServiceAccountKey.GoogleTokenUri ? [TokenUrl] : [new Uri(ServiceAccountKey.GoogleTokenUri), TokenUrl];
}

/// <summary>
/// Checks a tenant's GCP service-account key (untrusted input, SPEC §10.6) by signing a JWT with it and asking the
/// token endpoint for an access token — the cheapest call that proves the key exists, is enabled and is the account's.
/// </summary>
/// <remarks>
/// Only <c>"type": "service_account"</c> keys whose <c>token_uri</c> is Google's (or the configured test endpoint) are
/// accepted, and the token request always goes to the configured endpoint, never to a URL taken from the key. A refused
/// grant (400/401/403) is INVALID; 429, 5xx, timeouts and network failures are PENDING.
/// </remarks>
public sealed class GcpServiceAccountChecker(GcpTokenEndpoint endpoint, TimeProvider time)
{
    /// <summary>Parses and checks the key's shape; a 422 on <c>credential</c> for anything but a usable service-account key.</summary>
    public ServiceAccountKey Parse(string json)
    {
        try
        {
            var key = ServiceAccountKey.Parse(json);
            key.RequireTokenUri(endpoint.AllowedTokenUris);
            return key;
        }
        catch (FormatException ex)
        {
            throw RequestValidationException.For("credential", ex.Message);
        }
    }

    public async Task<CredentialCheck> CheckAsync(string json, CancellationToken cancellationToken)
    {
        var key = Parse(json);
        var facts = new Dictionary<string, string> { ["client_email"] = key.ClientEmail };
        if (key.ProjectId is { Length: > 0 } project)
        {
            facts["project_id"] = project;
        }

        ServiceAccountCredential credential;
        try
        {
            credential = key.CreateCredential(endpoint.TokenUrl, GcpTokenEndpoint.Scope, time);
        }
        catch (FormatException ex)
        {
            throw RequestValidationException.For("credential", ex.Message);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(endpoint.Timeout);
        try
        {
            await credential.RequestAccessTokenAsync(timeout.Token);
            return new CredentialCheck(CredentialStatus.Valid, null, 200) { Facts = facts };
        }
        catch (TokenResponseException ex)
        {
            var status = (int?)ex.StatusCode;
            var code = ex.Error?.Error ?? "no error code";
            var description = ex.Error?.ErrorDescription is { Length: > 0 } d ? ProviderCredentialChecker.Redact(d, key.PrivateKey) : null;
            var what = $"HTTP {status?.ToString(CultureInfo.InvariantCulture) ?? "?"}, {code}{(description is null ? "" : $": {description}")}";
            return status is 400 or 401 or 403
                ? new CredentialCheck(CredentialStatus.Invalid, $"Google refused service account {key.ClientEmail} ({what}).", status) { Facts = facts }
                : new CredentialCheck(CredentialStatus.Pending, $"Google could not check service account {key.ClientEmail} now ({what}); the key is kept and checked again later.", status) { Facts = facts };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new CredentialCheck(CredentialStatus.Pending, $"The Google token endpoint did not answer within {endpoint.Timeout.TotalSeconds:0} s; the key is kept and checked again later.", null) { Facts = facts };
        }
        catch (Exception ex) when (ex is HttpRequestException or GoogleApiException or IOException)
        {
            var reason = ex is HttpRequestException h ? h.HttpRequestError.ToString() : ex.GetType().Name;
            return new CredentialCheck(CredentialStatus.Pending, $"The Google token endpoint could not be reached ({reason}); the key is kept and checked again later.", null) { Facts = facts };
        }
    }
}
