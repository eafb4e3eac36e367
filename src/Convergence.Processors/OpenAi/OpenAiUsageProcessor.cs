using System.Globalization;
using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Core.Storage;
using Convergence.Processors.ProviderApis;

namespace Convergence.Processors.OpenAi;

/// <summary>
/// <c>openai.usage</c>: pages through <c>GET /organization/usage/completions</c> and <c>/organization/usage/embeddings</c>
/// (daily buckets grouped by model, project_id and api_key_id, completions also by batch) for the run's slice and
/// replaces that slice of <c>openai_usage_daily_raw</c>. See <see cref="ProviderFetchProcessor"/> for config and failure
/// handling.
/// </summary>
/// <remarks>
/// Token columns are disjoint, as pricing needs: <c>uncached_input_tokens</c> is <c>input_uncached_tokens</c> when the
/// provider sends it, else <c>input_tokens − input_cached_tokens − input_cache_write_tokens</c> (older responses have
/// neither of the last, so it is input − cached); cache writes (no TTL split at OpenAI) go to
/// <c>cache_write_5m_tokens</c>; <c>requests</c> is <c>num_model_requests</c>. A result without a model (only when the
/// provider ignores the grouping) is stored as model <c>unknown</c>, so it stays visible and unpriced rather than lost.
/// </remarks>
public sealed class OpenAiUsageProcessor(ProviderApiClient client, IControlPlaneStore store, TimeProvider time)
    : ProviderFetchProcessor(client, store, time)
{
    public const string CompletionsPath = "organization/usage/completions";
    public const string EmbeddingsPath = "organization/usage/embeddings";

    public override string PsType => "openai.usage";

    protected override IntegrationProvider Provider => IntegrationProvider.OpenAi;

    protected override async Task<FetchResult> FetchAsync(FetchRequest request, CancellationToken cancellationToken)
    {
        var rows = new List<Dictionary<string, object?>>();
        var metadata = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (path, name, groupBy) in new[]
                 {
                     (CompletionsPath, "completions", new[] { "model", "project_id", "api_key_id", "batch" }),
                     (EmbeddingsPath, "embeddings", new[] { "model", "project_id", "api_key_id" }),
                 })
        {
            var buckets = await Client.GetAllBucketsAsync(new ProviderApiCall(Provider, path, Query(request, groupBy), request.Credential), cancellationToken);
            var before = rows.Count;
            foreach (var bucket in buckets)
            {
                var day = OpenAiBuckets.Day(bucket, path);
                foreach (var result in OpenAiBuckets.Results(bucket))
                {
                    rows.Add(Row(day, result));
                }
            }

            metadata[$"buckets_{name}"] = buckets.Count;
            metadata[$"rows_{name}"] = rows.Count - before;
        }

        return new FetchResult(rows, metadata);
    }

    internal static List<KeyValuePair<string, string>> Query(FetchRequest request, IEnumerable<string> groupBy)
    {
        var query = new List<KeyValuePair<string, string>>
        {
            new("start_time", request.Start.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)),
            new("end_time", request.EndExclusive.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)),
            new("bucket_width", "1d"),
        };
        query.AddRange(groupBy.Select(g => new KeyValuePair<string, string>("group_by", g)));
        query.Add(new("limit", request.PageSize.ToString(CultureInfo.InvariantCulture)));
        return query;
    }

    private static Dictionary<string, object?> Row(DateOnly day, JsonElement result)
    {
        var input = Count(result, "input_tokens");
        var cached = Count(result, "input_cached_tokens");
        var cacheWrite = Count(result, "input_cache_write_tokens");
        var uncached = result.TryGetProperty("input_uncached_tokens", out var u) && u.ValueKind == JsonValueKind.Number
            ? u.GetInt64()
            : Math.Max(0, input - cached - cacheWrite);
        return new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["usage_date"] = day,
            ["provider"] = "openai",
            ["model"] = Text(result, "model") ?? "unknown",
            ["project_id"] = Text(result, "project_id"),
            ["api_key_id"] = Text(result, "api_key_id"),
            ["batch"] = result.TryGetProperty("batch", out var b) && b.ValueKind == JsonValueKind.True,
            ["uncached_input_tokens"] = uncached,
            ["cached_input_tokens"] = cached,
            ["cache_write_5m_tokens"] = cacheWrite,
            ["cache_write_1h_tokens"] = 0L,
            ["output_tokens"] = Count(result, "output_tokens"),
            ["requests"] = Count(result, "num_model_requests"),
            ["web_search_requests"] = null,
            ["source"] = "usage_api",
        };
    }
}

/// <summary>OpenAI's bucket shape: <c>start_time</c> in unix seconds and a <c>results</c> array.</summary>
internal static class OpenAiBuckets
{
    public static DateOnly Day(JsonElement bucket, string path) =>
        bucket.TryGetProperty("start_time", out var start) && start.ValueKind == JsonValueKind.Number && start.TryGetInt64(out var seconds)
            ? DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeSeconds(seconds).UtcDateTime)
            : throw new ProviderResponseException($"openai GET {path}: a bucket has no numeric start_time.");

    public static IEnumerable<JsonElement> Results(JsonElement bucket) =>
        bucket.TryGetProperty("results", out var results) && results.ValueKind == JsonValueKind.Array ? results.EnumerateArray() : [];
}
