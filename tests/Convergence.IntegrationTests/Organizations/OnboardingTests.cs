using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Organizations;

public sealed class OnboardingTests
{
    private const string Route = "/api/v1/organizations/onboard";

    [Fact]
    public async Task Onboard_ValidRequest_Returns201WithKeyDatasetAndLocation()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        using var client = factory.RootClient();

        using var response = await client.PostJsonAsync(Route, ConvergenceApiFactory.OnboardBody("acme_corp"));

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.Created);
        response.Headers.Location!.ToString().ShouldBe("/api/v1/organizations/acme_corp");
        var apiKey = body.Str("api_key");
        Regex.IsMatch(apiKey, "^acme_corp_api_[A-Za-z0-9]{32}$").ShouldBeTrue(apiKey);
        body.Str("org_slug").ShouldBe("acme_corp");
        body.Str("status").ShouldBe("ACTIVE");
        body.Str("dataset_id").ShouldBe("acme_corp_local");
        body.GetProperty("dataset_created").GetBoolean().ShouldBeTrue();
        body.GetProperty("tables_created").EnumerateArray().Select(t => t.GetString()).ShouldBe(["onboarding_validation_test"]);
        body.Str("api_key_fingerprint").ShouldBe(apiKey[^4..]);
        body.Str("org_api_key_id").ShouldStartWith("key_");
        body.Str("pipeline_logging_id").ShouldNotBeNullOrWhiteSpace();

        factory.Warehouse("acme_corp").Tables().ShouldContain("onboarding_validation_test");
    }

    [Theory]
    [InlineData("STARTER", 6, 180, 1)]
    [InlineData("PROFESSIONAL", 25, 750, 3)]
    [InlineData("SCALE", 100, 3000, 10)]
    public async Task Onboard_Plan_SetsSubscriptionLimits(string plan, int daily, int monthly, int concurrent)
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var result = await factory.OnboardAsync("acme", plan);

        var subscription = result.Body.GetProperty("subscription");
        subscription.Str("plan_name").ShouldBe(plan);
        subscription.GetProperty("daily_limit").GetInt32().ShouldBe(daily);
        subscription.GetProperty("monthly_limit").GetInt32().ShouldBe(monthly);
        subscription.GetProperty("concurrent_limit").GetInt32().ShouldBe(concurrent);

        var row = factory.ControlPlane().Rows("SELECT * FROM org_subscriptions WHERE org_slug = 'acme'").ShouldHaveSingleItem();
        row["plan_name"].ShouldBe(plan);
        row["daily_limit"].ShouldBe((long)daily);
        row["monthly_limit"].ShouldBe((long)monthly);
        row["concurrent_limit"].ShouldBe((long)concurrent);

        using var client = factory.OrgClient(result.ApiKey);
        using var response = await client.GetAsync("/api/v1/organizations/acme");
        var org = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        org.Str("subscription_plan").ShouldBe(plan);
        org.GetProperty("subscription").GetProperty("daily_limit").GetInt32().ShouldBe(daily);
        org.GetProperty("usage").GetProperty("pipelines_run_today").GetInt32().ShouldBe(0);
    }

    [Fact]
    public async Task Onboard_PlanInLowerCase_IsNormalized()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var result = await factory.OnboardAsync("acme", "professional");

        result.Body.GetProperty("subscription").Str("plan_name").ShouldBe("PROFESSIONAL");
    }

    [Fact]
    public async Task Onboard_SameSlugTwice_Is409AndKeepsTheFirstOrg()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var first = await factory.OnboardAsync("acme");
        using var client = factory.RootClient();

        using var response = await client.PostJsonAsync(Route, ConvergenceApiFactory.OnboardBody("acme", "SCALE"));

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        problem.Json.Str("detail").ShouldContain("acme");
        var db = factory.ControlPlane();
        db.CountForOrg("org_profiles", "acme").ShouldBe(1);
        db.CountForOrg("org_api_keys", "acme").ShouldBe(1);
        db.Rows("SELECT plan_name FROM org_subscriptions WHERE org_slug = 'acme'").ShouldHaveSingleItem()["plan_name"].ShouldBe("STARTER");
        factory.Warehouse("acme").Exists.ShouldBeTrue("the first org's dataset must survive the conflicting attempt");
        using var org = factory.OrgClient(first.ApiKey);
        using var get = await org.GetAsync("/api/v1/organizations/acme");
        get.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Onboard_InvalidValues_Is422NamingEachField()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        using var client = factory.RootClient();

        using var response = await client.PostJsonAsync(Route, new { org_slug = "Bad Slug", company_name = "Acme", admin_email = "nope", subscription_plan = "GOLD" });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        var errors = problem.Json.GetProperty("errors");
        errors.EnumerateObject().Select(p => p.Name).ShouldBe(["org_slug", "admin_email", "subscription_plan"], ignoreOrder: true);
        foreach (var field in errors.EnumerateObject())
        {
            field.Value.GetArrayLength().ShouldBeGreaterThan(0);
        }

        factory.ControlPlane().Count("org_profiles").ShouldBe(0);
    }

    [Fact]
    public async Task Onboard_MissingCompanyName_Is422NamingCompanyName()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        using var client = factory.RootClient();

        using var response = await client.PostJsonAsync(Route, new { org_slug = "acme", admin_email = "admin@example.com" });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").EnumerateObject().Select(p => p.Name).ShouldBe(["company_name"]);
    }

    [Fact]
    public async Task Onboard_BeforeBootstrap_Is409()
    {
        await using var factory = new ConvergenceApiFactory();
        using var client = factory.RootClient();

        using var response = await client.PostJsonAsync(Route, ConvergenceApiFactory.OnboardBody("acme"));

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        problem.Json.Str("detail").ShouldContain("bootstrap", Case.Insensitive);
        factory.Warehouse("acme").Exists.ShouldBeFalse();
    }

    [Fact]
    public async Task Onboard_ApiKey_IsNeverStoredInPlainAndHashIsSha256()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        // Use the key and rotate it too, so every write path has run.
        using (var org = factory.OrgClient(acme.ApiKey))
        using (var get = await org.GetAsync("/api/v1/organizations/acme"))
        {
            get.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        var row = factory.ControlPlane().Rows("SELECT * FROM org_api_keys WHERE org_slug = 'acme'").ShouldHaveSingleItem();
        row["org_api_key_id"].ShouldBe(acme.KeyId);
        row["org_api_key_hash"].ShouldBe(HttpAssertions.Sha256Hex(acme.ApiKey));
        row["fingerprint"].ShouldBe(acme.ApiKey[^4..]);
        ((string)row["encrypted_org_api_key"]!).ShouldStartWith("lkr1.");
        ((string)row["encrypted_org_api_key"]!).ShouldNotContain(acme.ApiKey);

        var needles = new[] { Encoding.UTF8.GetBytes(acme.ApiKey), Encoding.Unicode.GetBytes(acme.ApiKey), Encoding.UTF8.GetBytes(acme.ApiKey[(acme.Slug.Length + 5)..]) };
        var files = Directory.GetFiles(factory.DataDirectory, "*", SearchOption.AllDirectories);
        files.ShouldNotBeEmpty();
        foreach (var file in files)
        {
            var bytes = ReadShared(file);
            foreach (var needle in needles)
            {
                bytes.AsSpan().IndexOf(needle).ShouldBe(-1, $"the plain key (or its random part) is in {file}");
            }
        }
    }

    [Fact]
    public async Task Onboard_Success_IsAuditedAndRunRecorded()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var acme = await factory.OnboardAsync("acme");

        var db = factory.ControlPlane();
        var audit = db.Rows("SELECT * FROM org_audit_logs WHERE action = 'organization.onboard' AND org_slug = 'acme'").ShouldHaveSingleItem();
        audit["outcome"].ShouldBe("SUCCESS");
        ((string)audit["details"]!).ShouldContain(acme.KeyId);
        var runId = acme.Body.Str("pipeline_logging_id");
        var run = db.Rows("SELECT * FROM org_meta_pipeline_runs WHERE pipeline_logging_id = $id", ("$id", runId)).ShouldHaveSingleItem();
        run["status"].ShouldBe("COMPLETED");
        run["pipeline_id"].ShouldBe("acme-onboarding");
        run["org_slug"].ShouldBe("acme");
    }

    [Fact]
    public async Task Onboard_ConcurrentRequestsForOneSlug_ExactlyOneWinsOthersGet409()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        var attempts = await Task.WhenAll(Enumerable.Range(0, 6).Select(async _ =>
        {
            using var client = factory.RootClient();
            using var response = await client.PostJsonAsync(Route, ConvergenceApiFactory.OnboardBody("racer"));
            return await response.ReadBodyAsync();
        }));

        attempts.Select(a => (int)a.Status).Order().ToArray().ShouldBe(new[] { 201, 409, 409, 409, 409, 409 }, string.Join(Environment.NewLine, attempts.Select(a => a.Text)));
        var db = factory.ControlPlane();
        db.CountForOrg("org_profiles", "racer").ShouldBe(1);
        db.CountForOrg("org_api_keys", "racer").ShouldBe(1);
        var winner = attempts.Single(a => a.Status == HttpStatusCode.Created).Json;
        db.Rows("SELECT org_api_key_id FROM org_api_keys WHERE org_slug = 'racer'").ShouldHaveSingleItem()["org_api_key_id"].ShouldBe(winner.Str("org_api_key_id"));
        factory.Warehouse("racer").Exists.ShouldBeTrue();
        using var org = factory.OrgClient(winner.Str("api_key"));
        using var get = await org.GetAsync("/api/v1/organizations/racer");
        get.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Onboard_ConcurrentRequestsForDifferentSlugs_AllSucceed()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var slugs = Enumerable.Range(1, 6).Select(i => $"tenant_{i}").ToList();

        var results = await Task.WhenAll(slugs.Select(slug => factory.OnboardAsync(slug)));

        results.Select(r => r.ApiKey).Distinct().Count().ShouldBe(slugs.Count);
        factory.ControlPlane().Count("org_profiles").ShouldBe(slugs.Count);
        foreach (var result in results)
        {
            factory.Warehouse(result.Slug).Exists.ShouldBeTrue();
        }
    }

    [Fact]
    public async Task Onboard_OffboardedSlug_CannotBeReused()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        await factory.OnboardAsync("acme");
        using var client = factory.RootClient();
        using (var offboard = await client.DeleteAsync("/api/v1/organizations/acme?drop_data=true"))
        {
            offboard.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using var response = await client.PostJsonAsync(Route, ConvergenceApiFactory.OnboardBody("acme"));

        await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        factory.Warehouse("acme").Exists.ShouldBeFalse("the conflicting attempt must not recreate the dropped dataset");
    }

    private static byte[] ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
