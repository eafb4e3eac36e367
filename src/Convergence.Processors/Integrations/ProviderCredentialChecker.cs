using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Convergence.Core.Integrations;

namespace Convergence.Processors.Integrations;

/// <summary>Where each provider's API lives (from <c>OPENAI_BASE_URL</c>, <c>ANTHROPIC_BASE_URL</c>, <c>DEEPSEEK_BASE_URL</c>).</summary>
public sealed record ProviderEndpoints(Uri OpenAi, Uri Anthropic, Uri DeepSeek, TimeSpan Timeout)
{
    public static ProviderEndpoints Default { get; } = new(
        new Uri("https://api.openai.com/v1"), new Uri("https://api.anthropic.com"), new Uri("https://api.deepseek.com"), TimeSpan.FromSeconds(10));
}

/// <summary>What a live credential check found. <see cref="Reason"/> never contains the credential.</summary>
public sealed record CredentialCheck(string Status, string? Reason, int? HttpStatus)
{
    public bool IsDefinitive => Status != CredentialStatus.Pending;

    /// <summary>Non-secret facts the check learned (a service account's email and project), kept as metadata.</summary>
    public IReadOnlyDictionary<string, string> Facts { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// Checks a provider credential with the cheapest call that proves it (no tokens spent): OpenAI admin keys
/// <c>GET /organization/projects?limit=1</c>, other OpenAI keys <c>GET /models</c>; Anthropic admin keys
/// <c>GET /v1/organizations/me</c>, other keys <c>GET /v1/models?limit=1</c>; DeepSeek <c>GET /user/balance</c>.
/// </summary>
/// <remarks>
/// 2xx → VALID; 401/403 → INVALID with the provider's message (secrets redacted); 429, 5xx, timeouts and network
/// failures → PENDING with the reason, so the credential is kept and checked again later rather than lost.
/// </remarks>
public sealed partial class ProviderCredentialChecker(HttpClient http, ProviderEndpoints endpoints)
{
    public const string AnthropicVersion = "2023-06-01";
    private const int MaxReasonLength = 300;

    public async Task<CredentialCheck> CheckAsync(IntegrationProvider provider, string credential, CancellationToken cancellationToken)
    {
        using var request = BuildRequest(provider, credential);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(endpoints.Timeout);
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                return new CredentialCheck(CredentialStatus.Valid, null, status);
            }

            var message = ProviderMessage(await ReadBodyAsync(response, timeout.Token), credential);
            return response.StatusCode switch
            {
                HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                    new CredentialCheck(CredentialStatus.Invalid, $"{provider.RouteName} refused the credential ({status}){(message is null ? "." : $": {message}")}", status),
                _ => new CredentialCheck(CredentialStatus.Pending, $"{provider.RouteName} could not check the credential now ({status}){(message is null ? "" : $": {message}")}; it is kept and checked again later.", status),
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new CredentialCheck(CredentialStatus.Pending, $"{provider.RouteName} did not answer within {endpoints.Timeout.TotalSeconds:0} s; the credential is kept and checked again later.", null);
        }
        catch (HttpRequestException ex)
        {
            return new CredentialCheck(CredentialStatus.Pending, $"{provider.RouteName} could not be reached ({ex.HttpRequestError}); the credential is kept and checked again later.", null);
        }
    }

    private HttpRequestMessage BuildRequest(IntegrationProvider provider, string credential)
    {
        if (provider == IntegrationProvider.OpenAi)
        {
            var path = credential.StartsWith("sk-admin-", StringComparison.Ordinal) ? "organization/projects?limit=1" : "models";
            var request = new HttpRequestMessage(HttpMethod.Get, Join(endpoints.OpenAi, path));
            request.Headers.Authorization = new("Bearer", credential);
            return request;
        }

        if (provider == IntegrationProvider.Anthropic)
        {
            var path = credential.StartsWith("sk-ant-admin", StringComparison.Ordinal) ? "v1/organizations/me" : "v1/models?limit=1";
            var request = new HttpRequestMessage(HttpMethod.Get, Join(endpoints.Anthropic, path));
            request.Headers.Add("x-api-key", credential);
            request.Headers.Add("anthropic-version", AnthropicVersion);
            return request;
        }

        if (provider == IntegrationProvider.DeepSeek)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, Join(endpoints.DeepSeek, "user/balance"));
            request.Headers.Authorization = new("Bearer", credential);
            return request;
        }

        throw new ArgumentException($"{provider.RouteName} credentials are not checked over HTTP here.", nameof(provider));
    }

    private static Uri Join(Uri baseUrl, string path) => new(baseUrl.AbsoluteUri.TrimEnd('/') + "/" + path);

    private static async Task<string> ReadBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        // Error bodies are small; read at most 16 KiB so a hostile or broken server cannot make us buffer much.
        var buffer = new char[16 * 1024];
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        var read = await reader.ReadBlockAsync(buffer, cancellationToken);
        return new string(buffer, 0, read);
    }

    /// <summary>The provider's error message (OpenAI and Anthropic put it at <c>error.message</c>), secrets redacted.</summary>
    internal static string? ProviderMessage(string body, string credential)
    {
        string? message = null;
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.TryGetProperty("error", out var error))
            {
                message = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) ? m.GetString() : error.ToString();
            }
            else if (json.RootElement.TryGetProperty("message", out var top))
            {
                message = top.GetString();
            }
        }
        catch (JsonException)
        {
            message = body.Length == 0 ? null : "the provider's error body was not JSON";
        }

        if (string.IsNullOrWhiteSpace(message))
        {
            return null;
        }

        return Redact(message, credential);
    }

    /// <summary><paramref name="message"/> without the credential or anything shaped like a key, cut to a short length.</summary>
    internal static string Redact(string message, string credential)
    {
        if (credential.Length > 0)
        {
            message = message.Replace(credential, "[redacted]", StringComparison.Ordinal);
        }

        message = KeyLike().Replace(message, "[redacted]");
        return message.Length > MaxReasonLength ? message[..MaxReasonLength] + "…" : message;
    }

    /// <summary>Anything shaped like a provider key, even masked ("sk-abc…xyz"), is cut from messages.</summary>
    [GeneratedRegex(@"sk-[A-Za-z0-9_\-\.\*…]{2,}")]
    private static partial Regex KeyLike();
}
