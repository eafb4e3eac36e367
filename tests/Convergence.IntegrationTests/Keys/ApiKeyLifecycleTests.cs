using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Keys;

public sealed class ApiKeyLifecycleTests
{
    private const string OrgRoute = "/api/v1/organizations/acme";
    private const string KeysRoute = "/api/v1/organizations/acme/api-keys";

    [Fact]
    public async Task Rotate_WithGracePeriod_BothKeysWorkUntilGraceEnds()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var oldClient = factory.OrgClient(acme.ApiKey);
        await ShouldAnswerAsync(oldClient, HttpStatusCode.OK);

        var rotated = await IssueAsync(factory, new { rotate = true, grace_period_seconds = 3600 });

        rotated.GetProperty("previous_keys_affected").GetInt32().ShouldBe(1);
        rotated.GetProperty("previous_keys_expire_at").GetDateTimeOffset().ShouldBe(factory.Clock.GetUtcNow().AddSeconds(3600));
        var newKey = rotated.Str("api_key");
        newKey.ShouldNotBe(acme.ApiKey);
        Regex.IsMatch(newKey, "^acme_api_[A-Za-z0-9]{32}$").ShouldBeTrue(newKey);
        using var newClient = factory.OrgClient(newKey);
        await ShouldAnswerAsync(oldClient, HttpStatusCode.OK);
        await ShouldAnswerAsync(newClient, HttpStatusCode.OK);

        factory.Clock.Advance(TimeSpan.FromSeconds(3601));

        await ShouldAnswerAsync(oldClient, HttpStatusCode.Unauthorized);
        await ShouldAnswerAsync(newClient, HttpStatusCode.OK);
    }

    [Fact]
    public async Task Rotate_WithoutGracePeriod_OldKeyFailsImmediately()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var oldClient = factory.OrgClient(acme.ApiKey);
        await ShouldAnswerAsync(oldClient, HttpStatusCode.OK); // cached as valid on this instance

        var rotated = await IssueAsync(factory, new { rotate = true, grace_period_seconds = 0 });

        rotated.GetProperty("previous_keys_affected").GetInt32().ShouldBe(1);
        await ShouldAnswerAsync(oldClient, HttpStatusCode.Unauthorized);
        using var newClient = factory.OrgClient(rotated.Str("api_key"));
        await ShouldAnswerAsync(newClient, HttpStatusCode.OK);
    }

    [Fact]
    public async Task Issue_WithoutRotate_KeepsOldKeyWorking()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");

        var issued = await IssueAsync(factory, new { rotate = false });

        issued.GetProperty("previous_keys_affected").GetInt32().ShouldBe(0);
        issued.GetProperty("previous_keys_expire_at").ValueKind.ShouldBe(JsonValueKind.Null);
        using var oldClient = factory.OrgClient(acme.ApiKey);
        using var newClient = factory.OrgClient(issued.Str("api_key"));
        factory.Clock.Advance(TimeSpan.FromDays(400));
        await ShouldAnswerAsync(oldClient, HttpStatusCode.OK);
        await ShouldAnswerAsync(newClient, HttpStatusCode.OK);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(2_592_001)]
    public async Task Rotate_GracePeriodOutOfRange_Is422(long grace)
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();

        using var response = await root.PostJsonAsync(KeysRoute, new { rotate = true, grace_period_seconds = grace });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty("grace_period_seconds", out _).ShouldBeTrue(problem.Text);
        factory.ControlPlane().CountForOrg("org_api_keys", "acme").ShouldBe(1);
    }

    [Fact]
    public async Task ListKeys_ShowsIdsAndFingerprintsButNoSecretHashOrCiphertext()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        var second = await IssueAsync(factory, new { rotate = true, grace_period_seconds = 3600 });
        var secondKey = second.Str("api_key");
        using var root = factory.RootClient();

        using var response = await root.GetAsync(KeysRoute);

        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(HttpStatusCode.OK, body.Text);
        var keys = body.Json.GetProperty("keys").EnumerateArray().ToList();
        keys.Count.ShouldBe(2);
        keys.Select(k => k.Str("org_api_key_id")).ShouldBe([acme.KeyId, second.Str("org_api_key_id")], ignoreOrder: true);
        keys.Select(k => k.Str("fingerprint")).ShouldBe([acme.ApiKey[^4..], secondKey[^4..]], ignoreOrder: true);
        keys.ShouldAllBe(k => k.GetProperty("is_usable").GetBoolean());
        foreach (var key in keys)
        {
            key.TryGetProperty("api_key", out _).ShouldBeFalse();
            key.TryGetProperty("org_api_key_hash", out _).ShouldBeFalse();
            key.TryGetProperty("key_hash", out _).ShouldBeFalse();
            key.TryGetProperty("encrypted_key", out _).ShouldBeFalse();
        }

        body.Text.ShouldNotContain(acme.ApiKey);
        body.Text.ShouldNotContain(secondKey);
        body.Text.ShouldNotContain(HttpAssertions.Sha256Hex(acme.ApiKey));
        body.Text.ShouldNotContain(HttpAssertions.Sha256Hex(secondKey));
        body.Text.ShouldNotContain("lkr1.");
    }

    [Fact]
    public async Task ListKeys_AfterRevoke_ShowsKeyAsRevokedAndUnusable()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        using (var revoke = await root.DeleteAsync($"{KeysRoute}/{acme.KeyId}"))
        {
            revoke.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using var response = await root.GetAsync(KeysRoute);

        var key = (await response.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("keys").EnumerateArray().ShouldHaveSingleItem();
        key.GetProperty("is_active").GetBoolean().ShouldBeFalse();
        key.GetProperty("is_usable").GetBoolean().ShouldBeFalse();
        key.GetProperty("revoked_at").GetDateTimeOffset().ShouldBe(factory.Clock.GetUtcNow());
    }

    [Fact]
    public async Task ListKeys_AfterUse_ShowsLastUsedAtFromTheClock()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        factory.Clock.Advance(TimeSpan.FromMinutes(10));
        using (var org = factory.OrgClient(acme.ApiKey))
        {
            await ShouldAnswerAsync(org, HttpStatusCode.OK);
        }

        using var root = factory.RootClient();
        using var response = await root.GetAsync(KeysRoute);

        var key = (await response.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("keys").EnumerateArray().ShouldHaveSingleItem();
        key.GetProperty("last_used_at").GetDateTimeOffset().ShouldBe(factory.Clock.GetUtcNow());
        key.GetProperty("created_at").GetDateTimeOffset().ShouldBe(factory.Clock.GetUtcNow().AddMinutes(-10));
    }

    [Fact]
    public async Task Revoke_UnknownKeyId_Is404()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();

        using var response = await root.DeleteAsync($"{KeysRoute}/key_does_not_exist");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        problem.Json.Str("detail").ShouldContain("key_does_not_exist");
    }

    [Fact]
    public async Task Revoke_AnotherOrgsKeyId_Is404AndKeyKeepsWorking()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        var globex = await factory.OnboardAsync("globex");
        using var root = factory.RootClient();

        using var response = await root.DeleteAsync($"{KeysRoute}/{globex.KeyId}");

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        using var globexClient = factory.OrgClient(globex.ApiKey);
        using var get = await globexClient.GetAsync("/api/v1/organizations/globex");
        get.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Revoke_SameKeyTwice_SecondIs404()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        using (var first = await root.DeleteAsync($"{KeysRoute}/{acme.KeyId}"))
        {
            first.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using var second = await root.DeleteAsync($"{KeysRoute}/{acme.KeyId}");

        await second.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task KeyOperations_UnknownOrg_Are404()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        using var root = factory.RootClient();

        using (var list = await root.GetAsync("/api/v1/organizations/nobody/api-keys"))
        {
            await list.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using var issue = await root.PostJsonAsync("/api/v1/organizations/nobody/api-keys", new { rotate = false });
        await issue.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    private static async Task<JsonElement> IssueAsync(ConvergenceApiFactory factory, object body)
    {
        using var root = factory.RootClient();
        using var response = await root.PostJsonAsync(KeysRoute, body);
        var json = await response.ShouldBeJsonAsync(HttpStatusCode.Created);
        json.Str("org_slug").ShouldBe("acme");
        return json;
    }

    private static async Task ShouldAnswerAsync(HttpClient client, HttpStatusCode expected)
    {
        using var response = await client.GetAsync(OrgRoute);
        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(expected, body.Text);
    }
}
