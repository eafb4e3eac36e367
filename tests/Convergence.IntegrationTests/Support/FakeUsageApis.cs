using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A loopback stand-in for OpenAI's Usage and Costs APIs and Anthropic's usage and cost reports, replaying the pages in
/// <c>Fixtures/ProviderApis</c> (two per endpoint but embeddings) with their <c>next_page</c> cursors; it also answers the
/// admin-key checks of integration setup. <see cref="Fail"/> scripts faults on a given endpoint and page.
/// </summary>
public sealed class FakeUsageApis : IAsyncDisposable
{
    public const string OpenAiCompletions = "/openai/v1/organization/usage/completions";
    public const string OpenAiEmbeddings = "/openai/v1/organization/usage/embeddings";
    public const string OpenAiCosts = "/openai/v1/organization/costs";
    public const string AnthropicMessages = "/anthropic/v1/organizations/usage_report/messages";
    public const string AnthropicCostReport = "/anthropic/v1/organizations/cost_report";

    /// <summary>The Retry-After (seconds) the scripted 429 sends.</summary>
    public const int RetryAfterSeconds = 7;

    private static readonly Dictionary<string, string> FixtureNames = new(StringComparer.Ordinal)
    {
        [OpenAiCompletions] = "openai_completions",
        [OpenAiEmbeddings] = "openai_embeddings",
        [OpenAiCosts] = "openai_costs",
        [AnthropicMessages] = "anthropic_messages",
        [AnthropicCostReport] = "anthropic_cost_report",
    };

    private readonly WebApplication _app;
    private readonly Dictionary<string, List<string>> _pages = [];
    private readonly Dictionary<(string Path, int Page), Queue<string>> _faults = [];
    private readonly Dictionary<(string Path, int Page), string> _overrides = [];

    private FakeUsageApis(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
        foreach (var (path, name) in FixtureNames)
        {
            var pages = new List<string>();
            for (var n = 1; File.Exists(FixturePath(name, n)); n++)
            {
                pages.Add(File.ReadAllText(FixturePath(name, n)));
            }

            _pages[path] = pages;
        }
    }

    public Uri BaseUrl { get; }

    public Uri OpenAiBase => new(BaseUrl, "openai/v1");

    public Uri AnthropicBase => new(BaseUrl, "anthropic");

    /// <summary>When true every key is refused as unknown (a key revoked at the provider).</summary>
    public bool Revoked { get; set; }

    /// <summary>Every usage/cost request: path, query string, the page number served, and whether it carried the expected auth headers.</summary>
    public List<FakeRequest> Requests { get; } = [];

    public static async Task<FakeUsageApis> StartAsync()
    {
        FakeUsageApis? fake = null;
        var (app, baseUrl) = await LoopbackHost.StartAsync(app =>
            app.Map("/{**path}", async (HttpContext http) => await (await fake!.HandleAsync(http)).ExecuteAsync(http)));
        fake = new FakeUsageApis(app, baseUrl);
        return fake;
    }

    public static string FixturePath(string name, int page) =>
        Path.Combine(AppContext.BaseDirectory, "Fixtures", "ProviderApis", $"{name}.page{page}.json");

    /// <summary>
    /// The next requests for <paramref name="page"/> (1-based) of <paramref name="path"/> answer, in order: "429" (with
    /// Retry-After), "500", "hang" (no answer), "truncated" (a 200 whose JSON stops half-way), "401" or "403".
    /// </summary>
    public void Fail(string path, int page, params string[] faults)
    {
        lock (_faults)
        {
            if (!_faults.TryGetValue((path, page), out var queue))
            {
                _faults[(path, page)] = queue = new Queue<string>();
            }

            foreach (var fault in faults)
            {
                queue.Enqueue(fault);
            }
        }
    }

    /// <summary>Serves <paramref name="body"/> as page <paramref name="page"/> of <paramref name="path"/> until <see cref="Reset"/> (a late correction, a broken envelope).</summary>
    public void Replace(string path, int page, string body)
    {
        lock (_overrides)
        {
            _overrides[(path, page)] = body;
        }
    }

    /// <summary>Forgets recorded requests and pending faults and accepts keys again (tests of a class share one fake).</summary>
    public void Reset()
    {
        Revoked = false;
        lock (_faults)
        {
            _faults.Clear();
        }

        lock (_overrides)
        {
            _overrides.Clear();
        }

        lock (Requests)
        {
            Requests.Clear();
        }
    }

    public IReadOnlyList<FakeRequest> RequestsTo(string path)
    {
        lock (Requests)
        {
            return [.. Requests.Where(r => r.Path == path)];
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task<IResult> HandleAsync(HttpContext http)
    {
        var path = http.Request.Path.Value ?? "/";
        var openAiAuthorized = !Revoked && http.Request.Headers.Authorization == $"Bearer {FakeProviders.OpenAiAdminKey}";
        var anthropicAuthorized = !Revoked && http.Request.Headers["x-api-key"] == FakeProviders.AnthropicAdminKey
            && http.Request.Headers["anthropic-version"] == "2023-06-01";

        // The admin-key checks integration setup makes.
        if (path == "/openai/v1/organization/projects")
        {
            return openAiAuthorized ? Results.Json(new { @object = "list", data = Array.Empty<object>(), has_more = false }) : OpenAiInvalid();
        }

        if (path == "/anthropic/v1/organizations/me")
        {
            return anthropicAuthorized ? Results.Json(new { id = "00000000-0000-0000-0000-000000000000", name = "Acme", type = "organization" }) : AnthropicInvalid();
        }

        if (!_pages.TryGetValue(path, out var pages))
        {
            return Results.NotFound();
        }

        var openAi = path.StartsWith("/openai/", StringComparison.Ordinal);
        var cursor = http.Request.Query["page"].ToString();
        var previous = cursor.Length == 0 ? -1 : pages.FindIndex(p => p.Contains($"\"{cursor}\"", StringComparison.Ordinal));
        var index = cursor.Length == 0 ? 0 : previous >= 0 ? previous + 1 : -1;
        var page = index + 1;
        lock (Requests)
        {
            Requests.Add(new FakeRequest(path, http.Request.QueryString.Value ?? string.Empty, page, openAi ? openAiAuthorized : anthropicAuthorized));
        }

        string? fault = null;
        lock (_faults)
        {
            if (_faults.TryGetValue((path, page), out var queue) && queue.Count > 0)
            {
                fault = queue.Dequeue();
            }
        }

        switch (fault)
        {
            case "429":
                http.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                return openAi
                    ? Results.Json(new { error = new { message = "Rate limit reached for requests", type = "requests", param = (string?)null, code = "rate_limit_exceeded" } }, statusCode: 429)
                    : Results.Json(new { type = "error", error = new { type = "rate_limit_error", message = "Number of request tokens has exceeded your per-minute rate limit" } }, statusCode: 429);
            case "500":
                return openAi
                    ? Results.Json(new { error = new { message = "The server had an error while processing your request.", type = "server_error", param = (string?)null, code = (string?)null } }, statusCode: 500)
                    : Results.Json(new { type = "error", error = new { type = "api_error", message = "Internal server error" } }, statusCode: 500);
            case "hang":
                await Task.Delay(Timeout.InfiniteTimeSpan, http.RequestAborted);
                return Results.Empty;
            case "truncated":
                var text = pages[Math.Clamp(index, 0, pages.Count - 1)];
                return Results.Text(text[..(text.Length / 2)], "application/json");
            case "401":
                return openAi ? OpenAiInvalid() : AnthropicInvalid();
            case "403":
                return openAi
                    ? Results.Json(new { error = new { message = "You have insufficient permissions for this operation. Missing scopes: api.usage.read.", type = "invalid_request_error", param = (string?)null, code = (string?)null } }, statusCode: 403)
                    : Results.Json(new { type = "error", error = new { type = "permission_error", message = "Your API key does not have permission to use the specified resource." } }, statusCode: 403);
        }

        if (!(openAi ? openAiAuthorized : anthropicAuthorized))
        {
            return openAi ? OpenAiInvalid() : AnthropicInvalid();
        }

        lock (_overrides)
        {
            if (_overrides.TryGetValue((path, page), out var replaced))
            {
                return Results.Text(replaced, "application/json");
            }
        }

        return index >= 0 && index < pages.Count
            ? Results.Text(pages[index], "application/json")
            : Results.Json(new { error = new { message = $"Invalid page cursor '{cursor}'.", type = "invalid_request_error" } }, statusCode: 400);
    }

    private static IResult OpenAiInvalid() => Results.Json(
        new
        {
            error = new
            {
                message = $"Incorrect API key provided: {FakeProviders.OpenAiAdminKey[..7]}***{FakeProviders.OpenAiAdminKey[^4..]}. You can find your API key at https://platform.openai.com/account/api-keys.",
                type = "invalid_request_error",
                param = (string?)null,
                code = "invalid_api_key",
            },
        },
        statusCode: 401);

    private static IResult AnthropicInvalid() =>
        Results.Json(new { type = "error", error = new { type = "authentication_error", message = "invalid x-api-key" }, request_id = "req_0" }, statusCode: 401);
}

/// <summary>One request the fake served: path, raw query, the page it asked for, and whether its auth headers were right.</summary>
public sealed record FakeRequest(string Path, string Query, int Page, bool Authorized);
