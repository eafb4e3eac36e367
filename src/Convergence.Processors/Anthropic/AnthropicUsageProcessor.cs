using System.Globalization;
using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Core.Storage;
using Convergence.Processors.ProviderApis;

namespace Convergence.Processors.Anthropic;

/// <summary>
/// <c>anthropic.usage</c>: pages through <c>GET /v1/organizations/usage_report/messages</c> (daily buckets grouped by
/// model, workspace_id, api_key_id and service_tier) for the run's slice and replaces that slice of
/// <c>anthropic_usage_daily_raw</c>. See <see cref="ProviderFetchProcessor"/> for config and failure handling.
/// </summary>
/// <remarks>
/// <c>uncached_input_tokens</c>, <c>cache_read_input_tokens</c> → cached, <c>cache_creation.ephemeral_5m/1h_input_tokens</c>
/// → the cache-write columns, <c>output_tokens</c>, <c>server_tool_use.web_search_requests</c>; <c>project_id</c> is the
/// workspace (null for the default workspace); <c>batch</c> is <c>service_tier = batch</c>. The report has no request
/// count, so <c>requests</c> is NULL: 0 would claim the bucket had no requests, and a sum across providers would
/// count Anthropic's unknown as none. Grouping by service tier as well keeps batch usage apart (priced at batch rates), so a
/// key may have one row per tier on a day. A result without a model is stored as model <c>unknown</c>.
/// </remarks>
public sealed class AnthropicUsageProcessor(ProviderApiClient client, IControlPlaneStore store, TimeProvider time)
    : ProviderFetchProcessor(client, store, time)
{
    public const string MessagesPath = "v1/organizations/usage_report/messages";

    public override string PsType => "anthropic.usage";

    protected override IntegrationProvider Provider => IntegrationProvider.Anthropic;

    protected override async Task<FetchResult> FetchAsync(FetchRequest request, CancellationToken cancellationToken)
    {
        var buckets = await Client.GetAllBucketsAsync(
            new ProviderApiCall(Provider, MessagesPath, Query(request, ["model", "workspace_id", "api_key_id", "service_tier"]), request.Credential), cancellationToken);
        var rows = new List<Dictionary<string, object?>>();
        foreach (var bucket in buckets)
        {
            var day = AnthropicBuckets.Day(bucket, MessagesPath);
            foreach (var item in AnthropicBuckets.Results(bucket))
            {
                rows.Add(new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["usage_date"] = day,
                    ["provider"] = "anthropic",
                    ["model"] = Text(item, "model") ?? "unknown",
                    ["project_id"] = Text(item, "workspace_id"),
                    ["api_key_id"] = Text(item, "api_key_id"),
                    ["batch"] = Text(item, "service_tier") == "batch",
                    ["uncached_input_tokens"] = Count(item, "uncached_input_tokens"),
                    ["cached_input_tokens"] = Count(item, "cache_read_input_tokens"),
                    ["cache_write_5m_tokens"] = Count(item, "cache_creation", "ephemeral_5m_input_tokens"),
                    ["cache_write_1h_tokens"] = Count(item, "cache_creation", "ephemeral_1h_input_tokens"),
                    ["output_tokens"] = Count(item, "output_tokens"),
                    ["requests"] = null,
                    ["web_search_requests"] = Count(item, "server_tool_use", "web_search_requests"),
                    ["source"] = "usage_api",
                });
            }
        }

        return new FetchResult(rows, new Dictionary<string, object?> { ["buckets"] = buckets.Count });
    }

    /// <summary>RFC 3339 bounds, <c>bucket_width=1d</c>, <c>group_by[]</c> per field and the page size.</summary>
    internal static List<KeyValuePair<string, string>> Query(FetchRequest request, IEnumerable<string> groupBy)
    {
        var query = new List<KeyValuePair<string, string>>
        {
            new("starting_at", request.Start.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)),
            new("ending_at", request.EndExclusive.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)),
            new("bucket_width", "1d"),
        };
        query.AddRange(groupBy.Select(g => new KeyValuePair<string, string>("group_by[]", g)));
        query.Add(new("limit", request.PageSize.ToString(CultureInfo.InvariantCulture)));
        return query;
    }
}

/// <summary>Anthropic's bucket shape: <c>starting_at</c> in RFC 3339 and a <c>results</c> array.</summary>
internal static class AnthropicBuckets
{
    public static DateOnly Day(JsonElement bucket, string path) =>
        bucket.TryGetProperty("starting_at", out var start) && start.ValueKind == JsonValueKind.String
        && DateTimeOffset.TryParse(start.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at)
            ? DateOnly.FromDateTime(at.UtcDateTime)
            : throw new ProviderResponseException($"anthropic GET {path}: a bucket has no RFC 3339 starting_at.");

    public static IEnumerable<JsonElement> Results(JsonElement bucket) =>
        bucket.TryGetProperty("results", out var results) && results.ValueKind == JsonValueKind.Array ? results.EnumerateArray() : [];
}
