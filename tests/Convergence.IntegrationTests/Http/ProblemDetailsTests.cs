using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Http;

/// <summary>Bad bodies become 4xx problem details that say what was wrong, never a 500.</summary>
public sealed class ProblemDetailsTests : IClassFixture<SharedApi>
{
    private const string Route = "/api/v1/organizations/onboard";

    private readonly SharedApi _api;

    public ProblemDetailsTests(SharedApi api) => _api = api;

    [Fact]
    public async Task Onboard_MalformedJson_Is400()
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(Route, """{"org_slug": "acme",""");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        problem.Json.Str("title").ShouldBe("Malformed JSON");
    }

    [Fact]
    public async Task Onboard_WrongType_Is400NamingThePath()
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(Route, """{"org_slug": 5}""");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        problem.Json.Str("detail").ShouldContain("$.org_slug");
        problem.Json.Str("field").ShouldBe("$.org_slug");
        problem.Text.ShouldNotContain("System.");
        problem.Text.ShouldNotContain("Convergence.");
    }

    /// <remarks>
    /// Regression: request bodies were positional records, so System.Text.Json's message named the record instead of
    /// the field's type and every wrong type read "expected a JSON object".
    /// </remarks>
    [Theory]
    [InlineData(Route, """{"org_slug": 5}""", "expected a string")]
    [InlineData("/api/v1/organizations/acme/api-keys", """{"rotate": "yes"}""", "expected true or false")]
    [InlineData("/api/v1/organizations/acme/api-keys", """{"grace_period_seconds": "soon"}""", "expected an integer")]
    public async Task WrongType_Detail_NamesTheExpectedTypeOfTheField(string route, string json, string expected)
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(route, json);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        problem.Json.Str("detail").ShouldContain(expected, Case.Sensitive, "the detail must name the field's type, not the body's");
    }

    [Fact]
    public async Task Onboard_UnknownField_Is400NamingTheField()
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(Route, """{"org_slug": "acme", "company_name": "Acme", "admin_email": "admin@example.com", "plan_tier": "gold"}""");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        problem.Json.Str("detail").ShouldContain("plan_tier");
        problem.Text.ShouldNotContain("Convergence.");
    }

    [Theory]
    [InlineData("")]
    [InlineData("null")]
    public async Task Onboard_EmptyBody_Is400(string body)
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(Route, body);

        await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Onboard_JsonArrayBody_Is400()
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(Route, """[{"org_slug": "acme"}]""");

        await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Onboard_BodyOverLimit_Is413()
    {
        using var client = _api.Factory.RootClient();
        var padding = new string(' ', 12 * 1024 * 1024);

        using var response = await client.PostRawAsync(Route, "{" + padding + "}");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.RequestEntityTooLarge);
        problem.Json.Str("detail").ShouldContain("1048576");
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData(null)]
    public async Task Onboard_WrongContentType_Is415(string? mediaType)
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.PostRawAsync(Route, """{"org_slug": "acme", "company_name": "Acme", "admin_email": "admin@example.com"}""", mediaType);

        // Routing's Accepts matcher answers 415 before the endpoint runs, so the body is the status-code-page problem
        // (type, title, status; no detail) when a Content-Type is sent, and the exception handler's when none is.
        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(HttpStatusCode.UnsupportedMediaType, body.Text);
        body.MediaType.ShouldBe("application/problem+json", body.Text);
        body.Json.GetProperty("status").GetInt32().ShouldBe(415);
        body.Json.Str("title").ShouldNotBeNullOrWhiteSpace();
    }

    [Fact]
    public async Task UnknownRoute_Is404Problem()
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.GetAsync("/api/v1/no-such-thing");

        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(HttpStatusCode.NotFound);
        body.MediaType.ShouldBe("application/problem+json", body.Text);
        body.Json.GetProperty("status").GetInt32().ShouldBe(404);
    }

    [Fact]
    public async Task Problems_CarryRequestIdAndInstance()
    {
        using var client = _api.Factory.RootClient();

        using var response = await client.SendAsync(
            HttpMethod.Post, Route, new Dictionary<string, string> { ["X-Request-ID"] = "problem-req-42" }, new StringContent("{", System.Text.Encoding.UTF8, "application/json"));

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        problem.Json.Str("request_id").ShouldBe("problem-req-42");
        problem.Json.Str("instance").ShouldBe(Route);
    }

    [Fact]
    public async Task BadBodies_NoneCreatedAnOrganization()
    {
        using var client = _api.Factory.RootClient();
        using (var response = await client.PostRawAsync(Route, """{"org_slug": 5}"""))
        {
            response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        }

        _api.Factory.ControlPlane().Count("org_profiles").ShouldBe(0);
        _api.Factory.Logs.Records.ShouldNotContain(r => r.Category.EndsWith("ConvergenceExceptionHandler", StringComparison.Ordinal), "no bad body may be logged as an unhandled error");
    }
}
