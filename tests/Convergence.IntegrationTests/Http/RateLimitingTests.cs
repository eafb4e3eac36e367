using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Http;

/// <summary>
/// Limits are per minute of real time (the framework's fixed-window limiter); each test does all its requests well
/// inside one window. The root partition is used for exactly 3 setup requests (bootstrap and two onboardings).
/// </summary>
public sealed class RateLimitingTests
{
    private static readonly Dictionary<string, string?> ThreePerMinute = new() { ["RATE_LIMIT_REQUESTS_PER_MINUTE"] = "3" };

    [Fact]
    public async Task OrgKey_FourthRequestInAMinute_Is429WithRetryAfter_OtherOrgUnaffected()
    {
        await using var factory = new ConvergenceApiFactory(ThreePerMinute);
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        var globex = await factory.OnboardAsync("globex");
        using var acmeClient = factory.OrgClient(acme.ApiKey);
        for (var i = 0; i < 3; i++)
        {
            using var ok = await acmeClient.GetAsync("/api/v1/organizations/acme");
            ok.StatusCode.ShouldBe(HttpStatusCode.OK, $"request {i + 1}");
        }

        using var limited = await acmeClient.GetAsync("/api/v1/organizations/acme");

        var problem = await limited.ShouldBeProblemAsync(HttpStatusCode.TooManyRequests);
        var retryAfter = limited.Headers.RetryAfter.ShouldNotBeNull();
        retryAfter.Delta.ShouldNotBeNull().TotalSeconds.ShouldBeInRange(1, 60);
        problem.Text.ShouldNotContain(acme.ApiKey);
        limited.Headers.Contains("X-Request-ID").ShouldBeTrue();

        using var globexClient = factory.OrgClient(globex.ApiKey);
        using var other = await globexClient.GetAsync("/api/v1/organizations/globex");
        other.StatusCode.ShouldBe(HttpStatusCode.OK, "another org has its own partition");
    }

    [Fact]
    public async Task RootKey_HasItsOwnPartition()
    {
        await using var factory = new ConvergenceApiFactory(ThreePerMinute);
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        using (var third = await root.GetAsync("/api/v1/organizations/acme"))
        {
            third.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using (var fourth = await root.GetAsync("/api/v1/organizations/acme"))
        {
            await fourth.ShouldBeProblemAsync(HttpStatusCode.TooManyRequests);
        }

        using var org = factory.OrgClient(acme.ApiKey);
        using var response = await org.GetAsync("/api/v1/organizations/acme");
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task RandomInvalidKeys_ShareTheAnonymousPartition_AndDoNotTouchOrgs()
    {
        await using var factory = new ConvergenceApiFactory(ThreePerMinute);
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        for (var i = 0; i < 3; i++)
        {
            using var client = factory.OrgClient($"acme_api_{Guid.NewGuid():N}");
            using var denied = await client.GetAsync("/api/v1/organizations/acme");
            denied.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        }

        using (var flooder = factory.OrgClient($"acme_api_{Guid.NewGuid():N}"))
        using (var limited = await flooder.GetAsync("/api/v1/organizations/acme"))
        {
            await limited.ShouldBeProblemAsync(HttpStatusCode.TooManyRequests);
        }

        using var org = factory.OrgClient(acme.ApiKey);
        using var response = await org.GetAsync("/api/v1/organizations/acme");
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Health_IsNotRateLimited()
    {
        await using var factory = new ConvergenceApiFactory(ThreePerMinute);
        using var client = factory.AnonymousClient();

        for (var i = 0; i < 6; i++)
        {
            using var response = await client.GetAsync("/health");
            response.StatusCode.ShouldBe(HttpStatusCode.OK, $"request {i + 1}");
        }
    }
}
