using System.Net;
using System.Text.RegularExpressions;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Http;

/// <summary>Request ids, health, OpenAPI and docs: read-only, so one API serves the whole class.</summary>
public sealed class CrossCuttingTests : IClassFixture<SharedApi>
{
    private readonly ConvergenceApiFactory _factory;

    public CrossCuttingTests(SharedApi api) => _factory = api.Factory;

    [Theory]
    [InlineData("req-123")]
    [InlineData("0f8fad5b-d9cb-469f-a165-70867728950e")]
    [InlineData("trace:abc.DEF_9")]
    public async Task RequestId_Valid_IsEchoed(string requestId)
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.SendAsync(HttpMethod.Get, "/health", new Dictionary<string, string> { ["X-Request-ID"] = requestId });

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        response.Headers.GetValues("X-Request-ID").ShouldBe([requestId]);
    }

    [Fact]
    public async Task RequestId_Absent_IsGeneratedAndEchoed()
    {
        using var client = _factory.AnonymousClient();

        using var first = await client.GetAsync("/health");
        using var second = await client.GetAsync("/health");

        var id1 = first.Headers.GetValues("X-Request-ID").ShouldHaveSingleItem();
        var id2 = second.Headers.GetValues("X-Request-ID").ShouldHaveSingleItem();
        Regex.IsMatch(id1, "^[0-9a-f]{32}$").ShouldBeTrue(id1);
        id2.ShouldNotBe(id1);
    }

    public static TheoryData<string> InvalidRequestIds { get; } =
    [
        new string('a', 129),
        "has space",
        "semi;colon",
        "slash/inside",
        "<script>",
        "ünïcode",
    ];

    [Theory]
    [MemberData(nameof(InvalidRequestIds))]
    public async Task RequestId_Invalid_IsReplaced(string requestId)
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.SendAsync(HttpMethod.Get, "/api/v1/organizations/acme", new Dictionary<string, string> { ["X-Request-ID"] = requestId });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        var echoed = response.Headers.GetValues("X-Request-ID").ShouldHaveSingleItem();
        echoed.ShouldNotBe(requestId);
        Regex.IsMatch(echoed, "^[0-9a-f]{32}$").ShouldBeTrue(echoed);
        problem.Json.Str("request_id").ShouldBe(echoed);
    }

    [Fact]
    public async Task RequestId_OnErrorResponses_IsEchoed()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.SendAsync(HttpMethod.Get, "/nowhere", new Dictionary<string, string> { ["X-Request-ID"] = "lost-123" });

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        response.Headers.GetValues("X-Request-ID").ShouldBe(["lost-123"]);
    }

    [Fact]
    public async Task Health_IsHealthyWithoutAuth()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.GetAsync("/health");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("status").ShouldBe("healthy");
    }

    [Fact]
    public async Task HealthReady_AfterBootstrap_IsHealthyWithEveryCheck()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.GetAsync("/health/ready");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("status").ShouldBe("healthy");
        var checks = body.GetProperty("checks");
        foreach (var name in new[] { "store", "warehouse", "kms" })
        {
            checks.GetProperty(name).Str("status").ShouldBe("healthy", name);
        }
    }

    [Fact]
    public async Task OpenApi_DocumentListsTheRoutes()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.GetAsync("/openapi/v1.json");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        var paths = body.GetProperty("paths");
        paths.TryGetProperty("/api/v1/organizations/onboard", out _).ShouldBeTrue();
        paths.TryGetProperty("/api/v1/admin/bootstrap", out _).ShouldBeTrue();
        paths.TryGetProperty("/api/v1/organizations/{org_slug}/api-keys", out _).ShouldBeTrue();
        body.GetProperty("info").Str("title").ShouldBe("Convergence API");
    }

    [Fact]
    public async Task OpenApi_EachOperationNamesTheKeyItTakes()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.GetAsync("/openapi/v1.json");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        var schemes = body.GetProperty("components").GetProperty("securitySchemes");
        schemes.GetProperty("RootKey").Str("name").ShouldBe("X-CA-Root-Key");
        schemes.GetProperty("OrgApiKey").Str("name").ShouldBe("X-API-Key");

        static string[] KeysOf(System.Text.Json.JsonElement operation) =>
            [.. operation.GetProperty("security").EnumerateArray().SelectMany(r => r.EnumerateObject().Select(p => p.Name)).Order()];

        var paths = body.GetProperty("paths");
        KeysOf(paths.GetProperty("/api/v1/organizations/onboard").GetProperty("post")).ShouldBe(["RootKey"]);
        KeysOf(paths.GetProperty("/api/v1/organizations/{org_slug}").GetProperty("get")).ShouldBe(["OrgApiKey", "RootKey"]);
    }

    [Fact]
    public async Task Docs_SwaggerUiIsServed()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.GetAsync("/docs/index.html");

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.ShouldBe("text/html");
        (await response.Content.ReadAsStringAsync()).ShouldContain("swagger", Case.Insensitive);
    }
}

/// <summary>Readiness before bootstrap: reachable but not bootstrapped is degraded, still 200.</summary>
public sealed class ReadinessBeforeBootstrapTests
{
    [Fact]
    public async Task HealthReady_BeforeBootstrap_IsDegradedButAnswers200()
    {
        await using var factory = new ConvergenceApiFactory();
        using var client = factory.AnonymousClient();

        using var response = await client.GetAsync("/health/ready");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("status").ShouldBe("degraded");
        body.GetProperty("checks").GetProperty("store").Str("status").ShouldBe("degraded");
    }
}
