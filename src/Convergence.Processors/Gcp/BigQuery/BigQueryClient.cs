using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Kms.Google;
using Convergence.Processors.Integrations;
using Convergence.Processors.ProviderApis;
using Google;
using Google.Apis.Auth.OAuth2;
using Google.Apis.Auth.OAuth2.Responses;
using Microsoft.Extensions.Logging;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>A standard-SQL query to run in a tenant's BigQuery project with named parameters.</summary>
/// <param name="Parameters">Values by name, bound as <c>@name</c>: strings, whole numbers, decimals, booleans, dates, instants.</param>
/// <param name="MaximumBytesBilled">BigQuery fails the query instead of billing more than this, when set.</param>
/// <param name="Labels">Job labels (lowercase letters, digits, <c>_</c>, <c>-</c>), so the tenant can see who ran it.</param>
public sealed record BigQueryQuery(
    string ProjectId,
    string Sql,
    IReadOnlyDictionary<string, object?> Parameters,
    int PageSize,
    long? MaximumBytesBilled,
    IReadOnlyDictionary<string, string> Labels);

/// <summary>
/// One page of a query's result; valid until the next page is requested (its JSON is released then), so a result of
/// any size is read holding one page.
/// </summary>
public sealed class BigQueryPage(int number, string jobName, IReadOnlyList<BigQueryField> schema, JsonElement rows, long firstRow)
{
    /// <summary>1 for the first page with rows (or the only page), then 2, 3, …</summary>
    public int Number { get; } = number;

    /// <summary><c>project:location.jobId</c>, or the query id of a job-less query: names the result in messages.</summary>
    public string JobName { get; } = jobName;

    public IReadOnlyList<BigQueryField> Schema { get; } = schema;

    /// <summary>The page's rows (<c>{"f": [{"v": …}]}</c>); an empty array when the page has none.</summary>
    public JsonElement Rows { get; } = rows;

    /// <summary>1-based number of the page's first row in the whole result.</summary>
    public long FirstRow { get; } = firstRow;
}

/// <summary>
/// A thin BigQuery REST client for <c>gcp.bq_etl</c> with <c>source: bigquery</c>: <c>jobs.query</c>
/// (<c>POST {BIGQUERY_BASE_URL}/projects/{project}/queries</c>, standard SQL, named parameters) and then
/// <c>jobs.getQueryResults</c> (<c>GET …/queries/{jobId}</c>) while the job is not complete or a <c>pageToken</c>
/// remains, yielding one page at a time.
/// </summary>
/// <remarks>
/// <para>Authenticates as the tenant's service account: a JWT grant signed with its key, exchanged at the configured
/// token endpoint (never a URL from the key), scope <see cref="BigQueryOptions.Scope"/>. The token lives in this call only.</para>
/// <para>Every request follows the provider conventions of <see cref="ProviderRequestRetry"/>: 429 (its
/// <c>Retry-After</c>), 5xx, 408, BigQuery's 403 <c>rateLimitExceeded</c>, timeouts and dropped connections are retried
/// on the same request (jobs.query with the same <c>requestId</c>, so BigQuery does not start a second job), a malformed
/// body once. 401, other 403s and a refused token grant throw <see cref="ProviderCredentialRejectedException"/>; other
/// errors, <c>errors</c> or <c>status.errorResult</c> in a response, a row count different from <c>totalRows</c> and a
/// repeated page token throw <see cref="ProviderResponseException"/> with Google's message (tokens redacted).</para>
/// </remarks>
public sealed partial class BigQueryClient
{
    private const string UserAgent = "Convergence/1.0 (+bigquery-etl)";

    /// <summary>The rows of a page that has none (BigQuery leaves <c>rows</c> out).</summary>
    private static readonly JsonDocument EmptyArray = JsonDocument.Parse("[]");

    private readonly HttpClient _http;
    private readonly BigQueryOptions _options;
    private readonly GcpTokenEndpoint _tokens;
    private readonly TimeProvider _time;
    private readonly ILogger<BigQueryClient> _logger;
    private readonly ProviderRequestRetry _retry;

    public BigQueryClient(HttpClient http, BigQueryOptions options, GcpTokenEndpoint tokens, TimeProvider time, ILogger<BigQueryClient> logger, ProviderApiOptions? retry = null)
    {
        _http = http;
        _options = options;
        _tokens = tokens;
        _time = time;
        _logger = logger;
        _retry = new ProviderRequestRetry(retry ?? ProviderApiOptions.Default, time);
    }

    /// <summary>Runs <paramref name="query"/> as <paramref name="key"/>'s service account and yields its result page by page.</summary>
    /// <exception cref="FormatException">The key's private key is unusable (never quoted).</exception>
    public async IAsyncEnumerable<BigQueryPage> QueryAsync(BigQueryQuery query, ServiceAccountKey key, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        key.RequireTokenUri(_tokens.AllowedTokenUris);
        var credential = key.CreateCredential(_tokens.TokenUrl, BigQueryOptions.Scope, _time);
        var session = new Session(query, key, credential, Guid.CreateVersion7(_time.GetUtcNow()).ToString());
        var queriesUrl = $"{_options.BaseUrl.AbsoluteUri.TrimEnd('/')}/projects/{Uri.EscapeDataString(query.ProjectId)}/queries";
        var body = QueryRequestBody(query, session.RequestId);

        JsonDocument? response = await SendAsync(session, HttpMethod.Post, queriesUrl, body, "jobs.query", cancellationToken);
        var seenTokens = new HashSet<string>(StringComparer.Ordinal);
        var polls = 0;
        var page = 0;
        long rows = 0;
        IReadOnlyList<BigQueryField>? schema = null;
        string? pageToken = null;
        try
        {
            while (true)
            {
                var root = response.RootElement;
                var what = page == 0 && polls == 0 ? "jobs.query" : $"getQueryResults (page {page + 1})";
                ThrowOnJobErrors(root, session, what);
                var job = JobReference(root) ?? session.Job;
                session.Job ??= job;

                if (!root.TryGetProperty("jobComplete", out var complete) || complete.ValueKind != JsonValueKind.False)
                {
                    // Complete (an absent jobComplete on a page means the same): the page's rows, if any, and where to go next.
                    schema ??= Schema(root, session, what);
                    var pageRows = root.TryGetProperty("rows", out var r) && r.ValueKind == JsonValueKind.Array ? r : EmptyArray.RootElement;
                    page++;
                    yield return new BigQueryPage(page, session.JobName, schema, pageRows, rows + 1);
                    rows += pageRows.GetArrayLength();

                    pageToken = root.TryGetProperty("pageToken", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } token ? token : null;
                    if (pageToken is null)
                    {
                        CheckTotalRows(root, rows, session);
                        LogQueryDone(_logger, session.JobName, page, rows);
                        yield break;
                    }

                    if (!seenTokens.Add(pageToken))
                    {
                        throw new ProviderResponseException($"{Describe(session, what)}: the pageToken repeats an earlier page's; the result does not advance.");
                    }

                    if (page >= _retry.Options.MaxPages)
                    {
                        throw new ProviderResponseException($"{Describe(session, what)}: more than {_retry.Options.MaxPages} pages; raise config.page_size or narrow the query.");
                    }
                }
                else if (++polls > _retry.Options.MaxPages)
                {
                    throw new ProviderResponseException($"{Describe(session, what)}: the job was still running after {polls - 1} polls.");
                }

                if (job is null)
                {
                    throw new ProviderResponseException($"{Describe(session, what)}: the response has no jobReference, so its result cannot be fetched.");
                }

                response.Dispose();
                response = null;
                response = await SendAsync(session, HttpMethod.Get, ResultsUrl(job, pageToken, query.PageSize), null, $"getQueryResults (page {page + 1})", cancellationToken);
            }
        }
        finally
        {
            response?.Dispose();
        }
    }

    private string ResultsUrl(JobRef job, string? pageToken, int pageSize)
    {
        var url = new System.Text.StringBuilder(_options.BaseUrl.AbsoluteUri.TrimEnd('/'))
            .Append("/projects/").Append(Uri.EscapeDataString(job.ProjectId))
            .Append("/queries/").Append(Uri.EscapeDataString(job.JobId))
            .Append("?maxResults=").Append(pageSize.ToString(CultureInfo.InvariantCulture))
            .Append("&timeoutMs=").Append(((long)_options.ServerWait.TotalMilliseconds).ToString(CultureInfo.InvariantCulture));
        if ((job.Location ?? _options.Location) is { Length: > 0 } location)
        {
            url.Append("&location=").Append(Uri.EscapeDataString(location));
        }

        if (pageToken is not null)
        {
            url.Append("&pageToken=").Append(Uri.EscapeDataString(pageToken));
        }

        return url.ToString();
    }

    private byte[] QueryRequestBody(BigQueryQuery query, string requestId)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("query", query.Sql);
            json.WriteBoolean("useLegacySql", false);
            json.WriteString("parameterMode", "NAMED");
            json.WriteStartArray("queryParameters");
            foreach (var (name, value) in query.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                BigQueryParameters.Write(json, name, value);
            }

            json.WriteEndArray();
            if (_options.Location is { } location)
            {
                json.WriteString("location", location);
            }

            json.WriteNumber("timeoutMs", (long)_options.ServerWait.TotalMilliseconds);
            json.WriteNumber("maxResults", query.PageSize);
            if (query.MaximumBytesBilled is { } limit)
            {
                json.WriteString("maximumBytesBilled", limit.ToString(CultureInfo.InvariantCulture));
            }

            json.WriteString("requestId", requestId);
            if (query.Labels.Count > 0)
            {
                json.WriteStartObject("labels");
                foreach (var (name, value) in query.Labels)
                {
                    json.WriteString(name, value);
                }

                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private Task<JsonDocument> SendAsync(Session session, HttpMethod method, string url, byte[]? body, string what, CancellationToken cancellationToken) =>
        _retry.ExecuteAsync(
            token => SendOnceAsync(session, method, url, body, what, token),
            (attempt, delay, reason) => LogRetry(_logger, session.Query.ProjectId, what, attempt, delay.TotalSeconds, reason),
            cancellationToken);

    private async Task<JsonDocument> SendOnceAsync(Session session, HttpMethod method, string url, byte[]? body, string what, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.HttpTimeout);
        var accessToken = await AccessTokenAsync(session, what, timeout.Token, cancellationToken);
        using var request = new HttpRequestMessage(method, url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        var (status, retryAfter, text) = await _retry.ExchangeAsync(_http, request, Describe(session, what), _options.HttpTimeout, timeout.Token, cancellationToken);

        var code = (int)status;
        if (code is >= 200 and < 300)
        {
            return Parse(session, what, text);
        }

        var message = ProviderCredentialChecker.ProviderMessage(text, accessToken);
        var reason = ErrorReason(text);
        var suffix = message is null ? "." : $": {message}";
        if (status == HttpStatusCode.TooManyRequests || code >= 500 || status == HttpStatusCode.RequestTimeout
            || (status == HttpStatusCode.Forbidden && reason is "rateLimitExceeded"))
        {
            throw new ProviderUnavailableException($"{Describe(session, what)}: {code}{suffix}", retryAfter: retryAfter);
        }

        if (status == HttpStatusCode.Unauthorized || (status == HttpStatusCode.Forbidden && reason is not "quotaExceeded"))
        {
            throw new ProviderCredentialRejectedException(
                IntegrationProvider.Gcp, code, $"BigQuery refused service account {session.Key.ClientEmail} ({code}{(reason is null ? "" : ", " + reason)}) on {what} in project {session.Query.ProjectId}{suffix}");
        }

        throw new ProviderResponseException($"{Describe(session, what)}: {code}{(reason is null ? "" : " " + reason)}{suffix}");
    }

    private async Task<string> AccessTokenAsync(Session session, string what, CancellationToken timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await session.Credential.GetAccessTokenForRequestAsync(cancellationToken: timeout);
        }
        catch (TokenResponseException ex)
        {
            var code = (int?)ex.StatusCode;
            var description = ex.Error?.ErrorDescription is { Length: > 0 } d ? ProviderCredentialChecker.Redact(d, session.Key.PrivateKey) : null;
            var detail = $"HTTP {code?.ToString(CultureInfo.InvariantCulture) ?? "?"}, {ex.Error?.Error ?? "no error code"}{(description is null ? "" : $": {description}")}";
            if (code is 400 or 401 or 403)
            {
                throw new ProviderCredentialRejectedException(IntegrationProvider.Gcp, code.Value, $"Google refused service account {session.Key.ClientEmail} a BigQuery token ({detail}).");
            }

            throw new ProviderUnavailableException($"{Describe(session, what)}: the token endpoint could not issue a token now ({detail}).");
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ProviderUnavailableException($"{Describe(session, what)}: the token endpoint did not answer in time.", ex);
        }
        catch (Exception ex) when (ex is HttpRequestException or GoogleApiException or IOException)
        {
            throw new ProviderUnavailableException($"{Describe(session, what)}: the token endpoint could not be reached ({(ex is HttpRequestException h ? h.HttpRequestError.ToString() : ex.GetType().Name)}).", ex);
        }
    }

    private static JsonDocument Parse(Session session, string what, string text)
    {
        var document = ProviderRequestRetry.ParseJson(text, Describe(session, what));

        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new ProviderMalformedResponseException($"{Describe(session, what)}: the body is not a JSON object.");
        }

        return document;
    }

    /// <summary><c>errors</c> of a query response or <c>status.errorResult</c>: the query failed, with Google's message.</summary>
    private static void ThrowOnJobErrors(JsonElement root, Session session, string what)
    {
        JsonElement first = default;
        if (root.TryGetProperty("status", out var status) && status.ValueKind == JsonValueKind.Object
            && status.TryGetProperty("errorResult", out var errorResult) && errorResult.ValueKind == JsonValueKind.Object)
        {
            first = errorResult;
        }
        else if (root.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array && errors.GetArrayLength() > 0)
        {
            first = errors[0];
        }

        if (first.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        var reason = first.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        var message = first.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        var location = first.TryGetProperty("location", out var l) && l.ValueKind == JsonValueKind.String ? l.GetString() : null;
        throw new ProviderResponseException(
            $"{Describe(session, what)}: BigQuery reported {reason ?? "an error"}{(location is null ? "" : $" at {location}")}: {message ?? "(no message)"}. Nothing was written.");
    }

    private static IReadOnlyList<BigQueryField> Schema(JsonElement root, Session session, string what)
    {
        try
        {
            return root.TryGetProperty("schema", out var schema)
                ? BigQueryField.ParseSchema(schema)
                : throw new FormatException("the completed job's response has no schema");
        }
        catch (FormatException ex)
        {
            throw new ProviderResponseException($"{Describe(session, what)}: {ex.Message}.");
        }
    }

    private static void CheckTotalRows(JsonElement root, long rows, Session session)
    {
        if (root.TryGetProperty("totalRows", out var total) && total.ValueKind == JsonValueKind.String
            && long.TryParse(total.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var expected) && expected != rows)
        {
            throw new ProviderResponseException($"BigQuery job {session.JobName}: totalRows is {expected} but the pages held {rows} rows; nothing was written.");
        }
    }

    private static JobRef? JobReference(JsonElement root) =>
        root.TryGetProperty("jobReference", out var job) && job.ValueKind == JsonValueKind.Object
        && job.TryGetProperty("jobId", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() is { Length: > 0 } jobId
        && job.TryGetProperty("projectId", out var project) && project.ValueKind == JsonValueKind.String && project.GetString() is { Length: > 0 } projectId
            ? new JobRef(projectId, jobId, job.TryGetProperty("location", out var loc) && loc.ValueKind == JsonValueKind.String ? loc.GetString() : null)
            : null;

    /// <summary>The <c>reason</c> of the first entry of a Google error body's <c>error.errors</c>, if any.</summary>
    private static string? ErrorReason(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.ValueKind == JsonValueKind.Object
                   && json.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object
                   && error.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array && errors.GetArrayLength() > 0
                   && errors[0].ValueKind == JsonValueKind.Object && errors[0].TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String
                ? reason.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Describe(Session session, string what) => $"BigQuery {what} in project {session.Query.ProjectId}{(session.Job is null ? "" : $" (job {session.JobName})")}";

    private sealed record JobRef(string ProjectId, string JobId, string? Location);

    /// <summary>The state of one query: who runs it, its idempotency id and, once known, its job.</summary>
    private sealed class Session(BigQueryQuery query, ServiceAccountKey key, ServiceAccountCredential credential, string requestId)
    {
        public BigQueryQuery Query { get; } = query;

        public ServiceAccountKey Key { get; } = key;

        public ServiceAccountCredential Credential { get; } = credential;

        public string RequestId { get; } = requestId;

        public JobRef? Job { get; set; }

        public string JobName => Job is null ? $"request {RequestId}" : $"{Job.ProjectId}:{(Job.Location is null ? "" : Job.Location + ".")}{Job.JobId}";
    }

    [LoggerMessage(EventId = 5111, Level = LogLevel.Warning, Message = "BigQuery {What} in project {ProjectId}: attempt {Attempt} in {DelaySeconds} s after: {Reason}")]
    private static partial void LogRetry(ILogger logger, string projectId, string what, int attempt, double delaySeconds, string reason);

    [LoggerMessage(EventId = 5112, Level = LogLevel.Information, Message = "BigQuery job {JobName}: {Pages} pages, {Rows} rows read")]
    private static partial void LogQueryDone(ILogger logger, string jobName, int pages, long rows);
}
