using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Auth;

/// <summary>Who may call <c>GET /api/v1/organizations/{slug}</c> and the root-only routes, and how refusals look.</summary>
public sealed class AuthMatrixTests
{
    private const string AcmeRoute = "/api/v1/organizations/acme";

    [Fact]
    public async Task GetOrg_NoKey_Is401()
    {
        await using var factory = await StartAsync();
        using var client = factory.AnonymousClient();

        using var response = await client.GetAsync(AcmeRoute);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        problem.Json.Str("detail").ShouldContain("X-API-Key");
    }

    [Theory]
    [InlineData("not-a-key")]
    [InlineData("acme_api_short")]
    [InlineData("acme_api_abcdefghijklmnopqrstuvwxyz0123!!")]
    [InlineData("BAD SLUG_api_abcdefghijklmnopqrstuvwxyz012345")]
    public async Task GetOrg_MalformedKey_Is401WithoutEchoingIt(string key)
    {
        await using var factory = await StartAsync();
        using var client = factory.CreateClient();

        using var response = await client.SendAsync(HttpMethod.Get, AcmeRoute, new Dictionary<string, string> { [ConvergenceApiFactory.ApiKeyHeader] = key });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        problem.Text.ShouldNotContain(key);
    }

    [Fact]
    public async Task GetOrg_WellFormedUnknownKey_Is401()
    {
        await using var factory = await StartAsync();
        const string key = "acme_api_0123456789abcdefghijABCDEFGHIJ01";
        using var client = factory.OrgClient(key);

        using var response = await client.GetAsync(AcmeRoute);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        problem.Text.ShouldNotContain(key);
    }

    [Fact]
    public async Task GetOrg_OtherOrgsKey_Is403()
    {
        await using var factory = await StartAsync();
        var globex = await factory.OnboardAsync("globex");
        using var client = factory.OrgClient(globex.ApiKey);

        using var response = await client.GetAsync(AcmeRoute);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        problem.Json.Str("detail").ShouldContain("another organization");
        problem.Text.ShouldNotContain(globex.ApiKey);
    }

    [Fact]
    public async Task GetOrg_OwnKey_Is200()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var client = factory.OrgClient(acme.ApiKey);

        using var response = await client.GetAsync(AcmeRoute);

        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(HttpStatusCode.OK, body.Text);
        body.Json.Str("org_slug").ShouldBe("acme");
        body.Json.Str("status").ShouldBe("ACTIVE");
        body.Text.ShouldNotContain(acme.ApiKey);
    }

    [Fact]
    public async Task GetOrg_RootKey_Is200()
    {
        await using var factory = await StartAsync();
        using var client = factory.RootClient();

        using var response = await client.GetAsync(AcmeRoute);

        (await response.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("org_slug").ShouldBe("acme");
    }

    [Theory]
    [InlineData("wrong-root-key")]
    [InlineData("d03f519d8f6ee56c9d003502f16ffb6448ad4c931abda624b6acf2e8e8e75dfe")]
    [InlineData(" ")]
    public async Task GetOrg_WrongRootKey_Is401WithoutEchoingIt(string rootKey)
    {
        await using var factory = await StartAsync();
        using var client = factory.CreateClient();

        using var response = await client.SendAsync(HttpMethod.Get, AcmeRoute, new Dictionary<string, string> { [ConvergenceApiFactory.RootKeyHeader] = rootKey });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        if (rootKey.Trim().Length > 0)
        {
            problem.Text.ShouldNotContain(rootKey);
        }

        problem.Text.ShouldNotContain(ConvergenceApiFactory.RootKey);
    }

    [Fact]
    public async Task GetOrg_WrongRootKeyWithValidOrgKey_Is401()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var client = factory.OrgClient(acme.ApiKey);
        client.DefaultRequestHeaders.Add(ConvergenceApiFactory.RootKeyHeader, "wrong-root-key");

        using var response = await client.GetAsync(AcmeRoute);

        await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task GetOrg_RevokedKey_Is401()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var org = factory.OrgClient(acme.ApiKey);
        using (var warm = await org.GetAsync(AcmeRoute))
        {
            warm.StatusCode.ShouldBe(HttpStatusCode.OK, "the key is cached before it is revoked");
        }

        using var root = factory.RootClient();
        using (var revoke = await root.DeleteAsync($"{AcmeRoute}/api-keys/{acme.KeyId}"))
        {
            var body = await revoke.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.GetProperty("revoked").GetBoolean().ShouldBeTrue();
        }

        using var response = await org.GetAsync(AcmeRoute);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        problem.Json.Str("detail").ShouldContain("revoked");
        problem.Text.ShouldNotContain(acme.ApiKey);
    }

    [Fact]
    public async Task GetOrg_ExpiredKey_Is401AfterExpiry()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        var expiresAt = factory.Clock.GetUtcNow().AddHours(1);
        using var issue = await root.PostJsonAsync($"{AcmeRoute}/api-keys", new { rotate = false, expires_at = expiresAt });
        var issued = await issue.ShouldBeJsonAsync(HttpStatusCode.Created);
        issued.GetProperty("expires_at").GetDateTimeOffset().ShouldBe(expiresAt);
        issued.GetProperty("previous_keys_affected").GetInt32().ShouldBe(0);
        using var org = factory.OrgClient(issued.Str("api_key"));

        using (var before = await org.GetAsync(AcmeRoute))
        {
            before.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        factory.Clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        using var after = await org.GetAsync(AcmeRoute);

        var problem = await after.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        problem.Json.Str("detail").ShouldContain("expired");
    }

    [Fact]
    public async Task IssueKey_ExpiresAtInThePast_Is422()
    {
        await using var factory = await StartAsync();
        using var root = factory.RootClient();

        using var response = await root.PostJsonAsync($"{AcmeRoute}/api-keys", new { rotate = false, expires_at = factory.Clock.GetUtcNow().AddSeconds(-1) });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty("expires_at", out _).ShouldBeTrue(problem.Text);
    }

    /// <summary>Root-only routes, with a valid body where they take one (so only the key can be the reason for a refusal).</summary>
    public static TheoryData<string, string, string?> RootRoutes { get; } = new()
    {
        { "POST", "/api/v1/admin/bootstrap", """{"force_recreate_dataset":true}""" },
        { "POST", "/api/v1/admin/kms/rotate", """{"rewrap_only":false}""" },
        { "POST", "/api/v1/organizations/dryrun", """{"org_slug":"other","company_name":"Other","admin_email":"admin@example.com"}""" },
        { "POST", "/api/v1/organizations/onboard", """{"org_slug":"other","company_name":"Other","admin_email":"admin@example.com"}""" },
        { "PATCH", "/api/v1/organizations/acme", """{"status":"SUSPENDED"}""" },
        { "DELETE", "/api/v1/organizations/acme?drop_data=true", null },
        { "GET", "/api/v1/organizations/acme/api-keys", null },
        { "POST", "/api/v1/organizations/acme/api-keys", """{"rotate":true}""" },
        { "DELETE", "/api/v1/organizations/acme/api-keys/key_0123", null },
    };

    [Theory]
    [MemberData(nameof(RootRoutes))]
    public async Task RootRoute_WithOwnOrgKey_Is403AndChangesNothing(string method, string route, string? json)
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var client = factory.OrgClient(acme.ApiKey);
        using var content = json is null ? null : new StringContent(json, System.Text.Encoding.UTF8, "application/json");

        using var response = await client.SendAsync(new HttpMethod(method), route, content: content);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        problem.Json.Str("detail").ShouldContain("root key");
        problem.Text.ShouldNotContain(acme.ApiKey);
        using var get = await client.GetAsync(AcmeRoute);
        (await get.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("status").ShouldBe("ACTIVE");
        factory.ControlPlane().CountForOrg("org_api_keys", "acme").ShouldBe(1);
        factory.ControlPlane().CountForOrg("org_profiles", "other").ShouldBe(0);
        factory.Warehouse("acme").Exists.ShouldBeTrue();
    }

    [Fact]
    public async Task Offboard_OrgKeyStopsWorkingAndDropDataRemovesDataset()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var org = factory.OrgClient(acme.ApiKey);
        using (var warm = await org.GetAsync(AcmeRoute))
        {
            warm.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        factory.Warehouse("acme").Exists.ShouldBeTrue();
        using var root = factory.RootClient();

        using (var offboard = await root.DeleteAsync($"{AcmeRoute}?drop_data=true"))
        {
            var body = await offboard.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.Str("status").ShouldBe("DELETED");
            body.GetProperty("keys_revoked").GetInt32().ShouldBe(1);
            body.GetProperty("data_dropped").GetBoolean().ShouldBeTrue();
            body.Str("dataset_id").ShouldBe("acme_local");
        }

        using var response = await org.GetAsync(AcmeRoute);
        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        problem.Text.ShouldNotContain(acme.ApiKey);
        Directory.GetFiles(factory.DatasetsDirectory, "acme_local*").ShouldBeEmpty();
        using var asRoot = await root.GetAsync(AcmeRoute);
        (await asRoot.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("status").ShouldBe("DELETED");
    }

    [Fact]
    public async Task Offboard_WithoutDropData_KeepsDatasetButKillsKey()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var root = factory.RootClient();

        using (var offboard = await root.DeleteAsync(AcmeRoute))
        {
            (await offboard.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("data_dropped").GetBoolean().ShouldBeFalse();
        }

        factory.Warehouse("acme").Exists.ShouldBeTrue();
        using var org = factory.OrgClient(acme.ApiKey);
        using var response = await org.GetAsync(AcmeRoute);
        await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Offboarded_IssueKey_Is409()
    {
        await using var factory = await StartAsync();
        using var root = factory.RootClient();
        using (var offboard = await root.DeleteAsync(AcmeRoute))
        {
            offboard.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using var response = await root.PostJsonAsync($"{AcmeRoute}/api-keys", new { rotate = false });

        await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
    }

    [Theory]
    [InlineData("/api/v1/organizations/no_such_org")]
    [InlineData("/api/v1/organizations/Not-A-Slug")]
    public async Task GetOrg_UnknownOrInvalidSlugWithRoot_Is404(string route)
    {
        await using var factory = await StartAsync();
        using var root = factory.RootClient();

        using var response = await root.GetAsync(route);

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    /// <summary>A bootstrapped API with org <c>acme</c> onboarded.</summary>
    private static async Task<ConvergenceApiFactory> StartAsync()
    {
        var factory = new ConvergenceApiFactory();
        try
        {
            await factory.BootstrapAsync();
            await factory.OnboardAsync("acme");
            return factory;
        }
        catch
        {
            await factory.DisposeAsync();
            throw;
        }
    }
}
