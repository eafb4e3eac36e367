using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Organizations;

public sealed class PatchOrganizationTests
{
    private const string OrgRoute = "/api/v1/organizations/acme";

    [Fact]
    public async Task Patch_PlanToScale_UpdatesSubscriptionLimits()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var root = factory.RootClient();

        using var response = await root.PatchJsonAsync(OrgRoute, new { subscription_plan = "SCALE" });

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("subscription_plan").ShouldBe("SCALE");
        AssertScale(body.GetProperty("subscription"));
        var row = factory.ControlPlane().Rows("SELECT * FROM org_subscriptions WHERE org_slug = 'acme'").ShouldHaveSingleItem();
        row["plan_name"].ShouldBe("SCALE");
        row["daily_limit"].ShouldBe(100L);
        using var org = factory.OrgClient(acme.ApiKey);
        using var get = await org.GetAsync(OrgRoute);
        AssertScale((await get.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("subscription"));
    }

    [Fact]
    public async Task Patch_SuspendThenReactivate_OrgKeyIs401ThenWorksAgain()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        using var org = factory.OrgClient(acme.ApiKey);
        using var root = factory.RootClient();
        await ShouldAnswerAsync(org, HttpStatusCode.OK); // cached as valid

        using (var suspend = await root.PatchJsonAsync(OrgRoute, new { status = "SUSPENDED" }))
        {
            (await suspend.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("status").ShouldBe("SUSPENDED");
        }

        using (var denied = await org.GetAsync(OrgRoute))
        {
            var problem = await denied.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
            problem.Json.Str("detail").ShouldContain("SUSPENDED");
            problem.Text.ShouldNotContain(acme.ApiKey);
        }

        using (var rootGet = await root.GetAsync(OrgRoute))
        {
            (await rootGet.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("status").ShouldBe("SUSPENDED");
        }

        using (var reactivate = await root.PatchJsonAsync(OrgRoute, new { status = "ACTIVE" }))
        {
            (await reactivate.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("status").ShouldBe("ACTIVE");
        }

        await ShouldAnswerAsync(org, HttpStatusCode.OK);
    }

    [Theory]
    [InlineData("""{"subscription_plan":"PLATINUM"}""", "subscription_plan")]
    [InlineData("""{"status":"DELETED"}""", "status")]
    [InlineData("""{"status":"sleeping"}""", "status")]
    [InlineData("""{}""", "body")]
    public async Task Patch_InvalidValues_Is422NamingTheField(string json, string field)
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();

        using var response = await root.PatchAsync(OrgRoute, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").EnumerateObject().Select(p => p.Name).ShouldBe([field]);
        var row = factory.ControlPlane().Rows("SELECT status, subscription_plan FROM org_profiles WHERE org_slug = 'acme'").ShouldHaveSingleItem();
        row["status"].ShouldBe("ACTIVE");
        row["subscription_plan"].ShouldBe("STARTER");
    }

    [Fact]
    public async Task Patch_UnknownOrg_Is404()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        using var root = factory.RootClient();

        using var response = await root.PatchJsonAsync("/api/v1/organizations/nobody", new { status = "SUSPENDED" });

        await response.ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Patch_OffboardedOrg_Is409()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        using (var offboard = await root.DeleteAsync(OrgRoute))
        {
            offboard.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using var response = await root.PatchJsonAsync(OrgRoute, new { status = "ACTIVE" });

        await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task Patch_UserIdAndRequestId_AreRecordedInAudit()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        var headers = new Dictionary<string, string> { ["X-User-ID"] = "alice@example.com", ["X-Request-ID"] = "req-patch-0001" };
        using var content = new StringContent("""{"subscription_plan":"PROFESSIONAL"}""", System.Text.Encoding.UTF8, "application/json");

        using var response = await root.SendAsync(HttpMethod.Patch, OrgRoute, headers, content);

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        response.Headers.GetValues("X-Request-ID").ShouldBe(["req-patch-0001"]);
        var audit = factory.ControlPlane().Rows("SELECT * FROM org_audit_logs WHERE action = 'organization.update' AND org_slug = 'acme'").ShouldHaveSingleItem();
        audit["user_id"].ShouldBe("alice@example.com");
        audit["request_id"].ShouldBe("req-patch-0001");
        audit["actor_type"].ShouldBe("ROOT");
        audit["outcome"].ShouldBe("SUCCESS");
        using var details = JsonDocument.Parse((string)audit["details"]!);
        details.RootElement.GetProperty("subscription_plan").EnumerateArray().Select(e => e.GetString()).ShouldBe(["STARTER", "PROFESSIONAL"]);
    }

    [Fact]
    public async Task Patch_UserIdTooLong_IsNotRecorded()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var root = factory.RootClient();
        using var content = new StringContent("""{"status":"SUSPENDED"}""", System.Text.Encoding.UTF8, "application/json");

        using var response = await root.SendAsync(HttpMethod.Patch, OrgRoute, new Dictionary<string, string> { ["X-User-ID"] = new string('u', 129) }, content);

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        factory.ControlPlane().Rows("SELECT user_id FROM org_audit_logs WHERE action = 'organization.update'").ShouldHaveSingleItem()["user_id"].ShouldBeNull();
    }

    private static void AssertScale(JsonElement subscription)
    {
        subscription.Str("plan_name").ShouldBe("SCALE");
        subscription.GetProperty("daily_limit").GetInt32().ShouldBe(100);
        subscription.GetProperty("monthly_limit").GetInt32().ShouldBe(3000);
        subscription.GetProperty("concurrent_limit").GetInt32().ShouldBe(10);
    }

    private static async Task ShouldAnswerAsync(HttpClient client, HttpStatusCode expected)
    {
        using var response = await client.GetAsync(OrgRoute);
        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(expected, body.Text);
    }
}
