using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Http;

public sealed class CorsTests : IClassFixture<CorsTests.CorsApi>
{
    private const string AllowedOrigin = "https://app.example.com";

    private readonly ConvergenceApiFactory _factory;

    public CorsTests(CorsApi api) => _factory = api.Factory;

    [Fact]
    public async Task Preflight_FromAllowedOrigin_GetsAllowOrigin()
    {
        using var response = await PreflightAsync(AllowedOrigin);

        ((int)response.StatusCode).ShouldBeInRange(200, 299);
        response.Headers.GetValues("Access-Control-Allow-Origin").ShouldBe([AllowedOrigin]);
        string.Join(",", response.Headers.GetValues("Access-Control-Allow-Methods")).ShouldContain("POST");
        string.Join(",", response.Headers.GetValues("Access-Control-Allow-Headers")).ShouldContain("x-ca-root-key", Case.Insensitive);
    }

    [Theory]
    [InlineData("https://evil.example.com")]
    [InlineData("http://app.example.com")]
    [InlineData("https://app.example.com.evil.io")]
    public async Task Preflight_FromOtherOrigin_GetsNoAllowOrigin(string origin)
    {
        using var response = await PreflightAsync(origin);

        response.Headers.Contains("Access-Control-Allow-Origin").ShouldBeFalse();
    }

    [Fact]
    public async Task SimpleRequest_FromAllowedOrigin_ExposesRequestIdHeader()
    {
        using var client = _factory.AnonymousClient();

        using var response = await client.SendAsync(HttpMethod.Get, "/health", new Dictionary<string, string> { ["Origin"] = AllowedOrigin });

        response.Headers.GetValues("Access-Control-Allow-Origin").ShouldBe([AllowedOrigin]);
        string.Join(",", response.Headers.GetValues("Access-Control-Expose-Headers")).ShouldContain("X-Request-ID", Case.Insensitive);
    }

    private async Task<HttpResponseMessage> PreflightAsync(string origin)
    {
        using var client = _factory.AnonymousClient();
        return await client.SendAsync(HttpMethod.Options, "/api/v1/organizations/onboard", new Dictionary<string, string>
        {
            ["Origin"] = origin,
            ["Access-Control-Request-Method"] = "POST",
            ["Access-Control-Request-Headers"] = "x-ca-root-key,content-type",
        });
    }

    public sealed class CorsApi : IDisposable
    {
        public ConvergenceApiFactory Factory { get; } = new(new Dictionary<string, string?> { ["CORS_ORIGINS"] = AllowedOrigin });

        public void Dispose() => Factory.Dispose();
    }
}
