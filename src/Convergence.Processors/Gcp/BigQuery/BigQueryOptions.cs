using System.Text.RegularExpressions;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>
/// Where and how <see cref="BigQueryClient"/> reaches BigQuery: the REST base URL (<c>BIGQUERY_BASE_URL</c>), the
/// location queries run in (<c>BIGQUERY_LOCATION</c>; null lets BigQuery infer it from the tables read) and the limit on
/// each request (<c>INTEGRATION_CHECK_TIMEOUT_SECONDS</c>, as for the other providers' requests).
/// </summary>
public sealed partial record BigQueryOptions(Uri BaseUrl, string? Location, TimeSpan RequestTimeout)
{
    /// <summary>Scope of the tenant service account's token: jobs.query creates a query job, which the read-only scopes do not allow.</summary>
    public const string Scope = "https://www.googleapis.com/auth/bigquery";

    /// <summary>How long BigQuery may hold one jobs.query or getQueryResults call open waiting for the job (<c>timeoutMs</c>).</summary>
    public static readonly TimeSpan MaxServerWait = TimeSpan.FromSeconds(10);

    public static Uri DefaultBaseUrl { get; } = new("https://bigquery.googleapis.com/bigquery/v2");

    public static BigQueryOptions Default { get; } = new(DefaultBaseUrl, null, TimeSpan.FromSeconds(10));

    /// <summary>What BigQuery is asked to wait per call: <see cref="RequestTimeout"/>, at most <see cref="MaxServerWait"/>.</summary>
    public TimeSpan ServerWait => RequestTimeout < MaxServerWait ? RequestTimeout : MaxServerWait;

    /// <summary>The client's limit on one HTTP exchange: the server's wait plus <see cref="RequestTimeout"/> for the answer.</summary>
    public TimeSpan HttpTimeout => ServerWait + RequestTimeout;

    /// <summary>Whether <paramref name="location"/> looks like a BigQuery location (<c>US</c>, <c>EU</c>, <c>europe-west1</c>).</summary>
    public static bool IsLocation(string? location) => location is not null && LocationPattern().IsMatch(location);

    [GeneratedRegex(@"\A[A-Za-z][A-Za-z0-9-]{1,39}\z", RegexOptions.CultureInvariant)]
    private static partial Regex LocationPattern();
}
