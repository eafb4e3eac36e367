using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Organizations;

public sealed class DryRunTests
{
    private const string Route = "/api/v1/organizations/dryrun";

    [Fact]
    public async Task DryRun_ValidRequest_IsReadyWithNoFailedChecks()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var body = await DryRunAsync(factory, ConvergenceApiFactory.OnboardBody("acme", "PROFESSIONAL"));

        body.GetProperty("ready_for_onboarding").GetBoolean().ShouldBeTrue(body.ToString());
        body.GetProperty("checks_failed").GetInt32().ShouldBe(0);
        body.GetProperty("errors").GetArrayLength().ShouldBe(0);
        body.Str("org_slug").ShouldBe("acme");
        Checks(body).Keys.ShouldBe(
            ["org_slug_format", "company_name", "admin_email", "subscription_plan", "bootstrap_done", "org_slug_available", "org_dataset", "warehouse_writable"],
            ignoreOrder: true);
        body.GetProperty("checks_passed").GetInt32().ShouldBe(8);
        body.Str("pipeline_logging_id").ShouldNotBeNullOrWhiteSpace();
    }

    [Theory]
    [InlineData("Bad-Slug!", "admin@example.com", "STARTER", "org_slug_format")]
    [InlineData("ab", "admin@example.com", "STARTER", "org_slug_format")]
    [InlineData("acme", "not-an-email", "STARTER", "admin_email")]
    [InlineData("acme", "admin@localhost", "STARTER", "admin_email")]
    [InlineData("acme", "admin@example.com", "PLATINUM", "subscription_plan")]
    public async Task DryRun_InvalidField_FailsTheMatchingCheck(string slug, string email, string plan, string failingCheck)
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var body = await DryRunAsync(factory, new { org_slug = slug, company_name = "Acme", admin_email = email, subscription_plan = plan });

        body.GetProperty("ready_for_onboarding").GetBoolean().ShouldBeFalse();
        var checks = Checks(body);
        checks[failingCheck].ShouldBeFalse(body.ToString());
        checks.Where(c => !c.Value).Select(c => c.Key).ShouldBe([failingCheck], body.ToString());
        body.GetProperty("checks_failed").GetInt32().ShouldBe(1);
        var errors = body.GetProperty("errors").EnumerateArray().Select(e => e.GetString()!).ToList();
        errors.ShouldHaveSingleItem().ShouldStartWith(failingCheck + ":");
    }

    [Fact]
    public async Task DryRun_MissingFields_FailsEveryFieldCheck()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var body = await DryRunAsync(factory, new { });

        var checks = Checks(body);
        checks["org_slug_format"].ShouldBeFalse();
        checks["company_name"].ShouldBeFalse();
        checks["admin_email"].ShouldBeFalse();
        checks["subscription_plan"].ShouldBeTrue("the plan defaults to STARTER");
        body.GetProperty("errors").GetArrayLength().ShouldBe(3);
    }

    [Fact]
    public async Task DryRun_BeforeBootstrap_FailsBootstrapDone()
    {
        await using var factory = new ConvergenceApiFactory();

        var body = await DryRunAsync(factory, ConvergenceApiFactory.OnboardBody("acme"));

        body.GetProperty("ready_for_onboarding").GetBoolean().ShouldBeFalse();
        Checks(body)["bootstrap_done"].ShouldBeFalse();
        body.GetProperty("errors").EnumerateArray().Select(e => e.GetString()!).ShouldContain(e => e.StartsWith("bootstrap_done:", StringComparison.Ordinal));
        factory.ControlPlane().Exists.ShouldBeFalse("a dry-run must not create the central dataset");
    }

    [Fact]
    public async Task DryRun_SlugAlreadyOnboarded_FailsSlugAvailable()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");

        var body = await DryRunAsync(factory, ConvergenceApiFactory.OnboardBody("acme"));

        Checks(body)["org_slug_available"].ShouldBeFalse();
        body.GetProperty("ready_for_onboarding").GetBoolean().ShouldBeFalse();
    }

    [Fact]
    public async Task DryRun_ValidRequest_HasNoSideEffects()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var body = await DryRunAsync(factory, ConvergenceApiFactory.OnboardBody("acme"));

        body.GetProperty("ready_for_onboarding").GetBoolean().ShouldBeTrue();
        var db = factory.ControlPlane();
        db.Count("org_profiles").ShouldBe(0);
        db.Count("org_api_keys").ShouldBe(0);
        db.Count("org_subscriptions").ShouldBe(0);
        db.Count("org_usage_quotas").ShouldBe(0);
        factory.Warehouse("acme").Exists.ShouldBeFalse();
        Directory.GetFiles(factory.DatasetsDirectory).Select(Path.GetFileName).ShouldAllBe(f => f!.StartsWith("organizations.sqlite", StringComparison.Ordinal));
    }

    private static async Task<JsonElement> DryRunAsync(ConvergenceApiFactory factory, object body)
    {
        using var client = factory.RootClient();
        using var response = await client.PostJsonAsync(Route, body);
        return await response.ShouldBeJsonAsync(HttpStatusCode.OK);
    }

    private static Dictionary<string, bool> Checks(JsonElement body) =>
        body.GetProperty("checks").EnumerateArray().ToDictionary(c => c.Str("name"), c => c.GetProperty("passed").GetBoolean());
}
