using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A loopback stand-in for the OpenAI, Anthropic and DeepSeek endpoints that credential checks call, answering with
/// the documented success and error bodies; <see cref="Mode"/> switches it to 429, 500, malformed or hanging answers.
/// </summary>
public sealed class FakeProviders : IAsyncDisposable
{
    public const string OpenAiKey = "sk-proj-good0000000000000000";
    public const string OpenAiAdminKey = "sk-admin-good000000000000000";
    public const string AnthropicKey = "sk-ant-api03-good0000000000";
    public const string AnthropicAdminKey = "sk-ant-admin01-good00000000";
    public const string DeepSeekKey = "sk-deepseekgood0000000000000";

    private readonly WebApplication _app;

    private FakeProviders(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    public Uri OpenAiBase => new(BaseUrl, "openai/v1");

    public Uri AnthropicBase => new(BaseUrl, "anthropic");

    public Uri DeepSeekBase => new(BaseUrl, "deepseek");

    /// <summary>"ok" (default), "429", "500", "malformed", "hang", or "revoked" (every key is refused as unknown).</summary>
    public string Mode { get; set; } = "ok";

    public List<string> Requests { get; } = [];

    public static async Task<FakeProviders> StartAsync()
    {
        FakeProviders? fake = null;
        var (app, baseUrl) = await LoopbackHost.StartAsync(app =>
            app.Map("/{**path}", async (HttpContext http) => await (await fake!.HandleAsync(http)).ExecuteAsync(http)));
        fake = new FakeProviders(app, baseUrl);
        return fake;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task<IResult> HandleAsync(HttpContext http)
    {
        var path = http.Request.Path.Value ?? "/";
        lock (Requests)
        {
            Requests.Add($"{http.Request.Method} {path}{http.Request.QueryString}");
        }

        switch (Mode)
        {
            case "429":
                http.Response.Headers.RetryAfter = "30";
                return Results.Json(new { error = new { message = "Rate limit reached", type = "requests" } }, statusCode: 429);
            case "500":
                return Results.Json(new { error = new { message = "The server had an error", type = "server_error" } }, statusCode: 500);
            case "malformed":
                return Results.Text("{\"error\": {\"message\": \"trunc", "application/json", statusCode: 503);
            case "hang":
                await Task.Delay(Timeout.InfiniteTimeSpan, http.RequestAborted);
                return Results.Empty;
        }

        var bearer = http.Request.Headers.Authorization.ToString() is { Length: > 7 } auth && auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth[7..] : null;
        var apiKey = http.Request.Headers["x-api-key"].ToString();
        if (Mode == "revoked")
        {
            bearer = apiKey = "revoked";
        }

        return path switch
        {
            "/openai/v1/models" => bearer is OpenAiKey
                ? Results.Json(new { @object = "list", data = new[] { new { id = "gpt-4o", @object = "model" } } })
                : OpenAiInvalid(bearer),
            "/openai/v1/organization/projects" => bearer switch
            {
                OpenAiAdminKey => Results.Json(new { @object = "list", data = Array.Empty<object>(), has_more = false }),
                OpenAiKey => Results.Json(new { error = new { message = "You have insufficient permissions for this operation. Missing scopes: api.management.read.", type = "invalid_request_error" } }, statusCode: 403),
                _ => OpenAiInvalid(bearer),
            },
            "/anthropic/v1/organizations/me" when http.Request.Headers["anthropic-version"] == "2023-06-01" => apiKey == AnthropicAdminKey
                ? Results.Json(new { id = "00000000-0000-0000-0000-000000000000", name = "Acme", type = "organization" })
                : AnthropicInvalid(),
            "/anthropic/v1/models" when http.Request.Headers["anthropic-version"] == "2023-06-01" => apiKey == AnthropicKey
                ? Results.Json(new { data = new[] { new { id = "claude-sonnet-4-5", type = "model" } }, has_more = false })
                : AnthropicInvalid(),
            "/deepseek/user/balance" => bearer is DeepSeekKey
                ? Results.Json(new { is_available = true, balance_infos = new[] { new { currency = "CNY", total_balance = "110.00", granted_balance = "10.00", topped_up_balance = "100.00" } } })
                : Results.Json(new { error = new { message = "Authentication Fails, Your api key: ****0000 is invalid", type = "authentication_error" } }, statusCode: 401),
            _ => Results.NotFound(),
        };
    }

    private static IResult OpenAiInvalid(string? presented) => Results.Json(
        new
        {
            error = new
            {
                message = $"Incorrect API key provided: {Mask(presented)}. You can find your API key at https://platform.openai.com/account/api-keys.",
                type = "invalid_request_error",
                param = (string?)null,
                code = "invalid_api_key",
            },
        },
        statusCode: 401);

    private static IResult AnthropicInvalid() =>
        Results.Json(new { type = "error", error = new { type = "authentication_error", message = "invalid x-api-key" }, request_id = "req_0" }, statusCode: 401);

    // OpenAI echoes a masked key: the first characters, stars, the last four.
    private static string Mask(string? key) => key is { Length: > 8 } ? key[..7] + "***" + key[^4..] : "none";
}
