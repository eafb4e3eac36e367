using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Processors.Integrations;
using Microsoft.Extensions.Logging;

namespace Convergence.Processors.ProviderApis;

/// <summary>One paged GET against a provider's admin API: the endpoint, its query (repeated keys allowed) and the key.</summary>
/// <param name="Path">Relative to the provider's base URL, such as <c>organization/usage/completions</c>.</param>
public sealed record ProviderApiCall(IntegrationProvider Provider, string Path, IReadOnlyList<KeyValuePair<string, string>> Query, string Credential);

/// <summary>
/// Reads every page of an OpenAI or Anthropic usage/cost endpoint (envelope <c>{data, has_more, next_page}</c>,
/// cursor sent back as <c>page</c>) and returns the buckets of <c>data</c> in order.
/// </summary>
/// <remarks>
/// <para>Each request is retried on its own, so a failure on page 3 does not restart at page 1: 429 (waiting the
/// provider's <c>Retry-After</c>, capped), 5xx, timeouts (<see cref="ProviderEndpoints.Timeout"/>) and dropped
/// connections, with exponential backoff on the injected <see cref="TimeProvider"/>; when the attempts run out a
/// <see cref="ProviderUnavailableException"/> (transient) lets the step retry later. A malformed body (truncated JSON,
/// no <c>data</c> array) is retried once, then fails with a <see cref="ProviderResponseException"/> naming the endpoint
/// and page. 401/403 throw <see cref="ProviderCredentialRejectedException"/> at once.</para>
/// <para>The credential travels only in a request header; messages carry the provider's text with keys redacted.</para>
/// </remarks>
public sealed partial class ProviderApiClient
{
    public const string AnthropicVersion = ProviderCredentialChecker.AnthropicVersion;
    private const string UserAgent = "Convergence/1.0 (+usage-ingest)";

    private readonly HttpClient _http;
    private readonly ProviderEndpoints _endpoints;
    private readonly ILogger<ProviderApiClient> _logger;
    private readonly ProviderApiOptions _options;
    private readonly ProviderRequestRetry _retry;

    public ProviderApiClient(HttpClient http, ProviderEndpoints endpoints, TimeProvider time, ILogger<ProviderApiClient> logger, ProviderApiOptions? options = null)
    {
        _http = http;
        _endpoints = endpoints;
        _logger = logger;
        _options = (options ?? ProviderApiOptions.Default).Validate();
        _retry = new ProviderRequestRetry(_options, time);
    }

    /// <summary>Follows <c>next_page</c> until <c>has_more</c> is false; returns every bucket of every page, in order.</summary>
    public async Task<IReadOnlyList<JsonElement>> GetAllBucketsAsync(ProviderApiCall call, CancellationToken cancellationToken)
    {
        var buckets = new List<JsonElement>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? cursor = null;
        for (var page = 1; ; page++)
        {
            if (page > _options.MaxPages)
            {
                throw new ProviderResponseException($"{Describe(call, page)}: more than {_options.MaxPages} pages; the cursor does not seem to advance.");
            }

            using var document = await GetPageAsync(call, cursor, page, cancellationToken);
            var root = document.RootElement;
            foreach (var bucket in root.GetProperty("data").EnumerateArray())
            {
                buckets.Add(bucket.Clone());
            }

            var hasMore = root.TryGetProperty("has_more", out var more) && more.ValueKind == JsonValueKind.True;
            var next = root.TryGetProperty("next_page", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
            if (!hasMore || string.IsNullOrEmpty(next))
            {
                if (hasMore)
                {
                    throw new ProviderResponseException($"{Describe(call, page)}: has_more is true but next_page is empty.");
                }

                return buckets;
            }

            if (!seen.Add(next))
            {
                throw new ProviderResponseException($"{Describe(call, page)}: next_page repeats an earlier cursor.");
            }

            cursor = next;
        }
    }

    private Task<JsonDocument> GetPageAsync(ProviderApiCall call, string? cursor, int page, CancellationToken cancellationToken) =>
        _retry.ExecuteAsync(
            token => SendAsync(call, cursor, page, token),
            (attempt, delay, reason) => LogRetry(_logger, call.Provider.RouteName, call.Path, page, attempt, delay.TotalSeconds, reason),
            cancellationToken);

    /// <summary><c>BaseDelay × 2^retry</c>, at least the provider's Retry-After, never above <c>MaxDelay</c>.</summary>
    internal TimeSpan Delay(int retry, TimeSpan? retryAfter) => _retry.Delay(retry, retryAfter);

    private async Task<JsonDocument> SendAsync(ProviderApiCall call, string? cursor, int page, CancellationToken cancellationToken)
    {
        using var request = BuildRequest(call, cursor);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_endpoints.Timeout);
        var (status, retryAfter, body) = await _retry.ExchangeAsync(_http, request, Describe(call, page), _endpoints.Timeout, timeout.Token, cancellationToken);

        var code = (int)status;
        if (code is >= 200 and < 300)
        {
            return Parse(call, page, body);
        }

        var message = ProviderCredentialChecker.ProviderMessage(body, call.Credential);
        var suffix = message is null ? "." : $": {message}";
        if (status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            throw new ProviderCredentialRejectedException(call.Provider, code, $"{call.Provider.RouteName} refused the credential ({code}) on {call.Path}{suffix}");
        }

        if (status == HttpStatusCode.TooManyRequests || code >= 500 || status == HttpStatusCode.RequestTimeout)
        {
            throw new ProviderUnavailableException($"{Describe(call, page)}: {code}{suffix}", retryAfter: retryAfter);
        }

        throw new ProviderResponseException($"{Describe(call, page)}: {code}{suffix}");
    }

    private static JsonDocument Parse(ProviderApiCall call, int page, string body)
    {
        var document = ProviderRequestRetry.ParseJson(body, Describe(call, page));

        if (document.RootElement.ValueKind != JsonValueKind.Object
            || !document.RootElement.TryGetProperty("data", out var data)
            || data.ValueKind != JsonValueKind.Array)
        {
            document.Dispose();
            throw new ProviderMalformedResponseException($"{Describe(call, page)}: the body has no data array.");
        }

        return document;
    }

    private HttpRequestMessage BuildRequest(ProviderApiCall call, string? cursor)
    {
        var baseUrl = call.Provider == IntegrationProvider.OpenAi ? _endpoints.OpenAi
            : call.Provider == IntegrationProvider.Anthropic ? _endpoints.Anthropic
            : throw new ArgumentException($"{call.Provider.RouteName} has no usage API client here.", nameof(call));
        var query = new StringBuilder();
        foreach (var (key, value) in cursor is null ? call.Query : call.Query.Append(new("page", cursor)))
        {
            query.Append(query.Length == 0 ? '?' : '&').Append(Uri.EscapeDataString(key)).Append('=').Append(Uri.EscapeDataString(value));
        }

        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUrl.AbsoluteUri.TrimEnd('/') + "/" + call.Path + query));
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        if (call.Provider == IntegrationProvider.OpenAi)
        {
            request.Headers.Authorization = new("Bearer", call.Credential);
        }
        else
        {
            request.Headers.Add("x-api-key", call.Credential);
            request.Headers.Add("anthropic-version", AnthropicVersion);
        }

        return request;
    }

    private static string Describe(ProviderApiCall call, int page) => $"{call.Provider.RouteName} GET {call.Path} (page {page})";

    [LoggerMessage(EventId = 5101, Level = LogLevel.Warning, Message = "{Provider} GET {Path} page {Page}: attempt {Attempt} in {DelaySeconds} s after: {Reason}")]
    private static partial void LogRetry(ILogger logger, string provider, string path, int page, int attempt, double delaySeconds, string reason);
}
