using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A loopback stand-in for Google's OAuth token endpoint and BigQuery's <c>jobs.query</c> / <c>jobs.getQueryResults</c>
/// REST methods, replaying the documented response shapes (GCP_REST.md §7.1–7.2).
/// </summary>
/// <remarks>
/// <para><c>POST /token</c> implements the JWT-bearer grant for the service accounts made by
/// <see cref="ServiceAccountJson"/>: RS256 signature checked against that account's key, issuer and scope; the token it
/// issues remembers its account and scopes.</para>
/// <para><c>POST /bigquery/v2/projects/{project}/queries</c> starts a job (the same one again for a repeated
/// <c>requestId</c>) and answers <c>jobComplete: false</c> <see cref="IncompleteResponses"/> times (counting the
/// getQueryResults polls) before the result: the project's rows (<see cref="SetResult"/>) in pages of
/// <see cref="PageRows"/> with <c>pageToken</c>s. Only a token with the BigQuery scope is accepted, and only the account
/// that started a job may read it. <see cref="Fail"/> scripts faults per request.</para>
/// </remarks>
public sealed class FakeBigQuery : IAsyncDisposable
{
    public const string BigQueryScope = "https://www.googleapis.com/auth/bigquery";
    public const string ReadOnlyScope = "https://www.googleapis.com/auth/cloud-platform.read-only";

    /// <summary>The Retry-After (seconds) the scripted 429 sends.</summary>
    public const int RetryAfterSeconds = 7;

    /// <summary>Rows per page the fake serves (whatever maxResults asks: a small page makes paging visible).</summary>
    public const int PageRows = 3;

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, RSA> _accounts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _revoked = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (string Email, string[] Scopes)> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _jobsByRequestId = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, FakeBigQueryResult> _results = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Queue<string>> _faults = new(StringComparer.Ordinal);
    private int _jobCount;

    private FakeBigQuery(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    public Uri TokenUrl => new(BaseUrl, "token");

    public Uri BigQueryBase => new(BaseUrl, "bigquery/v2");

    /// <summary><c>jobComplete: false</c> answers of each job before its result (the jobs.query answer included).</summary>
    public int IncompleteResponses { get; set; } = 2;

    /// <summary>Every BigQuery request, in order.</summary>
    public List<FakeBigQueryRequest> Requests { get; } = [];

    /// <summary>Every access token issued, so tests can check none leaks.</summary>
    public IReadOnlyCollection<string> IssuedTokens => [.. _tokens.Keys];

    public static async Task<FakeBigQuery> StartAsync()
    {
        FakeBigQuery? fake = null;
        var (app, baseUrl) = await LoopbackHost.StartAsync(app =>
        {
            app.MapPost("/token", async http => await (await fake!.TokenAsync(http)).ExecuteAsync(http));
            app.MapPost("/bigquery/v2/projects/{project}/queries", async (HttpContext http, string project) => await (await fake!.QueryAsync(http, project)).ExecuteAsync(http));
            app.MapGet("/bigquery/v2/projects/{project}/queries/{jobId}", async (HttpContext http, string project, string jobId) => await (await fake!.ResultsAsync(http, project, jobId)).ExecuteAsync(http));
        });
        fake = new FakeBigQuery(app, baseUrl);
        return fake;
    }

    /// <summary>A service-account key for a new account of <paramref name="project"/>, whose token_uri is this fake.</summary>
    public string ServiceAccountJson(string clientEmail, string project)
    {
        var key = _accounts.GetOrAdd(clientEmail, _ => RSA.Create(2048));
        return new JsonObject
        {
            ["type"] = "service_account",
            ["project_id"] = project,
            ["private_key_id"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(clientEmail)))[..16],
            ["private_key"] = key.ExportPkcs8PrivateKeyPem(),
            ["client_email"] = clientEmail,
            ["client_id"] = "1234567890",
            ["token_uri"] = TokenUrl.AbsoluteUri,
        }.ToJsonString();
    }

    /// <summary>From now on the token endpoint refuses <paramref name="clientEmail"/>'s grants (a key deleted in the tenant's project).</summary>
    public void Revoke(string clientEmail) => _revoked[clientEmail] = 0;

    /// <summary>What queries in <paramref name="project"/> return until <see cref="Reset"/>.</summary>
    public void SetResult(string project, FakeBigQueryResult result) => _results[project] = result;

    /// <summary>
    /// The next requests of <paramref name="what"/> — <c>query</c> (jobs.query) or <c>page:N</c> (getQueryResults for
    /// page N, polls included) — answer, in order: "429" (Retry-After), "503", "hang" (no answer), "truncated" (a 200
    /// whose JSON stops half-way), "403" (accessDenied), "401", "errors" (a 200 whose errors say the query failed),
    /// "errorResult" (a 200 whose status.errorResult says the job failed).
    /// </summary>
    public void Fail(string what, params string[] faults)
    {
        lock (_faults)
        {
            if (!_faults.TryGetValue(what, out var queue))
            {
                _faults[what] = queue = new Queue<string>();
            }

            foreach (var fault in faults)
            {
                queue.Enqueue(fault);
            }
        }
    }

    /// <summary>Forgets requests, faults, results, jobs and revocations (tests of a class share one fake); accounts and tokens stay.</summary>
    public void Reset()
    {
        lock (_faults)
        {
            _faults.Clear();
        }

        lock (Requests)
        {
            Requests.Clear();
        }

        _results.Clear();
        _jobs.Clear();
        _jobsByRequestId.Clear();
        _revoked.Clear();
        IncompleteResponses = 2;
    }

    public IReadOnlyList<FakeBigQueryRequest> RequestsFor(string project)
    {
        lock (Requests)
        {
            return [.. Requests.Where(r => r.Project == project)];
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        foreach (var key in _accounts.Values)
        {
            key.Dispose();
        }
    }

    // ---- token endpoint ------------------------------------------------------------------------------------------

    private async Task<IResult> TokenAsync(HttpContext http)
    {
        if (!http.Request.HasFormContentType)
        {
            return TokenError("invalid_request", "Expected application/x-www-form-urlencoded.");
        }

        var form = await http.Request.ReadFormAsync();
        if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return TokenError("unsupported_grant_type", "Invalid grant_type.");
        }

        var parts = form["assertion"].ToString().Split('.');
        if (parts.Length != 3)
        {
            return TokenError("invalid_grant", "The assertion is not a JWT.");
        }

        try
        {
            using var payload = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]));
            var email = payload.RootElement.GetProperty("iss").GetString() ?? "";
            if (_revoked.ContainsKey(email)
                || !_accounts.TryGetValue(email, out var key)
                || !key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), System.Buffers.Text.Base64Url.DecodeFromChars(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1))
            {
                return TokenError("invalid_grant", "Invalid JWT Signature.");
            }

            var scopes = (payload.RootElement.GetProperty("scope").GetString() ?? "").Split(' ');
            if (!scopes.Contains(BigQueryScope) && !scopes.Contains(ReadOnlyScope))
            {
                return TokenError("invalid_scope", "The scope is not allowed.");
            }

            var token = "ya29.bq-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
            _tokens[token] = (email, scopes);
            return Results.Json(new { access_token = token, expires_in = 3599, token_type = "Bearer" });
        }
        catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            return TokenError("invalid_grant", "The assertion is malformed.");
        }
    }

    // ---- BigQuery ------------------------------------------------------------------------------------------------

    private async Task<IResult> QueryAsync(HttpContext http, string project)
    {
        var email = Caller(http);
        var body = await JsonNode.ParseAsync(http.Request.Body) as JsonObject ?? [];
        Record(new FakeBigQueryRequest("POST", project, null, http.Request.QueryString.Value ?? "", body, email));
        if (email is null)
        {
            return GoogleError(401, "UNAUTHENTICATED", "authError", "Request is missing required authentication credential. Expected OAuth 2 access token.");
        }

        var requestId = body["requestId"]?.GetValue<string>() ?? Guid.NewGuid().ToString();
        var job = _jobs[_jobsByRequestId.GetOrAdd(requestId, _ =>
        {
            var id = $"job_{Interlocked.Increment(ref _jobCount)}";
            _jobs[id] = new Job(id, project, email, body["location"]?.GetValue<string>() ?? "US", _results.GetValueOrDefault(project) ?? FakeBigQueryResult.Empty, IncompleteResponses);
            return id;
        })];
        if (await FaultAsync(http, "query", () => AnswerText(job, 1, poll: true)) is { } fault)
        {
            return fault;
        }

        return Answer(job, 1, poll: true);
    }

    private async Task<IResult> ResultsAsync(HttpContext http, string project, string jobId)
    {
        var email = Caller(http);
        var token = http.Request.Query["pageToken"].ToString();
        var page = token.StartsWith("page-", StringComparison.Ordinal) && int.TryParse(token[5..], CultureInfo.InvariantCulture, out var p) ? p : token.Length == 0 ? 1 : -1;
        Record(new FakeBigQueryRequest("GET", project, jobId, http.Request.QueryString.Value ?? "", null, email));
        if (email is null)
        {
            return GoogleError(401, "UNAUTHENTICATED", "authError", "Request is missing required authentication credential. Expected OAuth 2 access token.");
        }

        if (!_jobs.TryGetValue(jobId, out var job) || job.Project != project || job.Email != email)
        {
            return GoogleError(404, "NOT_FOUND", "notFound", $"Not found: Job {project}:{jobId}");
        }

        if (page < 1)
        {
            return GoogleError(400, "INVALID_ARGUMENT", "invalid", $"Invalid page token '{token}'.");
        }

        if (await FaultAsync(http, $"page:{page}", () => AnswerText(job, page, poll: token.Length == 0)) is { } fault)
        {
            return fault;
        }

        return Answer(job, page, poll: token.Length == 0);
    }

    private IResult Answer(Job job, int page, bool poll) => Results.Text(AnswerText(job, page, poll), "application/json");

    private string AnswerText(Job job, int page, bool poll)
    {
        if (poll && Interlocked.Decrement(ref job.IncompleteLeft) >= 0)
        {
            return new JsonObject { ["kind"] = "bigquery#queryResponse", ["jobReference"] = JobReference(job), ["jobComplete"] = false }.ToJsonString();
        }

        var rows = job.Result.Rows;
        var pages = Math.Max(1, (rows.Count + PageRows - 1) / PageRows);
        var response = new JsonObject
        {
            ["kind"] = "bigquery#getQueryResultsResponse",
            ["etag"] = "\"fake\"",
            ["schema"] = JsonNode.Parse(job.Result.SchemaJson),
            ["jobReference"] = JobReference(job),
            ["totalRows"] = rows.Count.ToString(CultureInfo.InvariantCulture),
            ["rows"] = new JsonArray([.. rows.Skip((page - 1) * PageRows).Take(PageRows).Select(r => r.DeepClone())]),
            ["totalBytesProcessed"] = "1048576",
            ["jobComplete"] = true,
            ["cacheHit"] = false,
        };
        if (page < pages)
        {
            response["pageToken"] = $"page-{page + 1}";
        }

        return response.ToJsonString();
    }

    private static JsonObject JobReference(Job job) => new() { ["projectId"] = job.Project, ["jobId"] = job.Id, ["location"] = job.Location };

    private async Task<IResult?> FaultAsync(HttpContext http, string what, Func<string> normal)
    {
        string? fault = null;
        lock (_faults)
        {
            if (_faults.TryGetValue(what, out var queue) && queue.Count > 0)
            {
                fault = queue.Dequeue();
            }
        }

        switch (fault)
        {
            case null:
                return null;
            case "429":
                http.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                return GoogleError(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "Exceeded rate limits: too many api requests per user per method for this user_method.");
            case "503":
                return GoogleError(503, "UNAVAILABLE", "backendError", "The service is currently unavailable.");
            case "hang":
                await Task.Delay(Timeout.InfiniteTimeSpan, http.RequestAborted);
                return Results.Empty;
            case "truncated":
                var text = normal();
                return Results.Text(text[..(text.Length / 2)], "application/json");
            case "403":
                return GoogleError(403, "PERMISSION_DENIED", "accessDenied", "Access Denied: Table billing_export.gcp_billing_export_v1: User does not have permission to query table, or perhaps it does not exist.");
            case "401":
                return GoogleError(401, "UNAUTHENTICATED", "authError", "Request had invalid authentication credentials.");
            case "errors":
                return Results.Json(new
                {
                    kind = "bigquery#queryResponse",
                    jobComplete = true,
                    errors = new[] { new { reason = "invalidQuery", location = "query", message = "Unrecognized name: usage_start_tme at [5:16]" } },
                });
            case "errorResult":
                return Results.Json(new
                {
                    kind = "bigquery#getQueryResultsResponse",
                    jobComplete = true,
                    status = new { state = "DONE", errorResult = new { reason = "resourcesExceeded", message = "Resources exceeded during query execution: The query could not be executed in the allotted memory." } },
                });
            default:
                throw new InvalidOperationException($"Unknown fault '{fault}'.");
        }
    }

    private string? Caller(HttpContext http)
    {
        var auth = http.Request.Headers.Authorization.ToString();
        return auth.StartsWith("Bearer ", StringComparison.Ordinal) && _tokens.TryGetValue(auth[7..], out var owner) && owner.Scopes.Contains(BigQueryScope)
            ? owner.Email
            : null;
    }

    private void Record(FakeBigQueryRequest request)
    {
        lock (Requests)
        {
            Requests.Add(request);
        }
    }

    private static IResult GoogleError(int code, string status, string reason, string message) => Results.Json(
        new { error = new { code, message, errors = new[] { new { message, domain = "global", reason } }, status } }, statusCode: code);

    private static IResult TokenError(string error, string description) => Results.Json(new { error, error_description = description }, statusCode: 400);

    private sealed class Job(string id, string project, string email, string location, FakeBigQueryResult result, int incomplete)
    {
        public int IncompleteLeft = incomplete;

        public string Id { get; } = id;

        public string Project { get; } = project;

        public string Email { get; } = email;

        public string Location { get; } = location;

        public FakeBigQueryResult Result { get; } = result;
    }
}

/// <summary>One BigQuery request: method, project, job (getQueryResults), raw query string, JSON body (jobs.query) and the account whose token it carried (null: none valid).</summary>
public sealed record FakeBigQueryRequest(string Method, string Project, string? JobId, string Query, JsonObject? Body, string? Email);

/// <summary>A query result as BigQuery sends it: the schema's JSON and rows in <c>{"f": [{"v": …}]}</c> form.</summary>
public sealed record FakeBigQueryResult(string SchemaJson, IReadOnlyList<JsonObject> Rows)
{
    public static FakeBigQueryResult Empty { get; } = new("""{"fields": []}""", []);

    /// <summary>A cell value as BigQuery sends scalars: text, or null.</summary>
    public static JsonNode? V(string? text) => text is null ? null : JsonValue.Create(text);

    /// <summary>A row or RECORD value: <c>{"f": [{"v": …}, …]}</c>.</summary>
    public static JsonObject Record(params JsonNode?[] values) => new() { ["f"] = new JsonArray([.. values.Select(v => (JsonNode)new JsonObject { ["v"] = v })]) };

    /// <summary>A REPEATED value: <c>[{"v": …}, …]</c>.</summary>
    public static JsonArray Repeated(params JsonNode?[] values) => new([.. values.Select(v => (JsonNode)new JsonObject { ["v"] = v })]);

    /// <summary>A TIMESTAMP as BigQuery's default float seconds since the epoch, such as <c>1.7636328E9</c>.</summary>
    public static JsonNode Timestamp(DateTimeOffset instant) =>
        JsonValue.Create(((instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / (decimal)TimeSpan.TicksPerSecond).ToString("0.0################E0", CultureInfo.InvariantCulture))!;
}
