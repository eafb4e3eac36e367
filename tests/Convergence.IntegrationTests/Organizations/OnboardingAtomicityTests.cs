using System.Net;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Organizations;

/// <summary>Onboarding is all or nothing: a failure at any point leaves no row, file or key, and a retry succeeds.</summary>
public sealed class OnboardingAtomicityTests
{
    private const string Slug = "atomic_org";

    public static TheoryData<FaultPoint> FaultPoints { get; } =
    [
        FaultPoint.InsertSubscription,
        FaultPoint.InsertUsageQuota,
        FaultPoint.InsertApiKey,
        FaultPoint.TransactionRecordAudit,
        FaultPoint.Commit,
        FaultPoint.WarehouseEnsureTable,
        FaultPoint.KmsEncrypt,
    ];

    /// <remarks>
    /// Regression (faults after the dataset was created): the retry once answered 500 "Dataset does not exist",
    /// because SqliteDatasetFiles.Delete left a pooled Mode=ReadWriteCreate connection on the deleted file.
    /// </remarks>
    [Theory]
    [MemberData(nameof(FaultPoints))]
    public async Task Onboard_FaultAtPoint_LeavesNothingAndRetrySucceeds(FaultPoint fault)
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();

        factory.Faults.Active = fault;
        await OnboardExpectingFailureAsync(factory);
        factory.Faults.Triggered.ShouldBe(1, $"the {fault} fault must actually fire");

        AssertNothingLeft(factory);
        AssertFailureAudited(factory, fault);

        factory.Faults.Active = FaultPoint.None;
        var retry = await factory.OnboardAsync(Slug);
        await AssertWorkingOrgAsync(factory, retry);
    }

    [Fact]
    public async Task Onboard_FaultThenRestartOnSameDataDirectory_RetrySucceeds()
    {
        var dataDirectory = ConvergenceApiFactory.NewTemporaryDirectory();
        try
        {
            // A restart on the same data folder: the SQLite deployment (PostgreSQL restarts are the multi-instance tests').
            await using (var failing = new ConvergenceApiFactory(ConvergenceApiFactory.OnSqlite(), dataDirectory))
            {
                await failing.BootstrapAsync();
                failing.Faults.Active = FaultPoint.WarehouseEnsureTable;
                await OnboardExpectingFailureAsync(failing);
            }

            SqlitePools.ClearAsIfProcessRestarted(dataDirectory, Slug);
            await using var fresh = new ConvergenceApiFactory(ConvergenceApiFactory.OnSqlite(), dataDirectory);
            AssertNothingLeft(fresh);
            var retry = await fresh.OnboardAsync(Slug);
            await AssertWorkingOrgAsync(fresh, retry);
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(dataDirectory);
        }
    }

    [Fact]
    public async Task Onboard_FaultForOneOrg_DoesNotDisturbAnotherOrg()
    {
        await using var factory = new ConvergenceApiFactory();
        await factory.BootstrapAsync();
        var other = await factory.OnboardAsync("bystander");

        factory.Faults.Active = FaultPoint.Commit;
        await OnboardExpectingFailureAsync(factory);

        factory.ControlPlane().CountForOrg("org_profiles", "bystander").ShouldBe(1);
        factory.Warehouse("bystander").Exists.ShouldBeTrue();
        using var client = factory.OrgClient(other.ApiKey);
        using var response = await client.GetAsync("/api/v1/organizations/bystander");
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    private static async Task OnboardExpectingFailureAsync(ConvergenceApiFactory factory)
    {
        using var client = factory.RootClient();
        using var response = await client.PostJsonAsync("/api/v1/organizations/onboard", ConvergenceApiFactory.OnboardBody(Slug));
        var problem = await response.ShouldBeServerErrorProblemAsync();
        problem.Text.ShouldNotContain("Injected fault", Case.Insensitive, "exception details stay in the log");
        problem.Text.ShouldNotContain(Slug + "_api_", Case.Sensitive, "no key may leak in the error");
    }

    private static void AssertNothingLeft(ConvergenceApiFactory factory)
    {
        var db = factory.ControlPlane();
        foreach (var table in new[] { "org_profiles", "org_subscriptions", "org_usage_quotas", "org_api_keys" })
        {
            db.CountForOrg(table, Slug).ShouldBe(0, $"{table} kept a row of the failed onboarding");
        }

        Directory.GetFiles(factory.DatasetsDirectory, Slug + "_local*").ShouldBeEmpty("the failed onboarding left dataset files");
    }

    private static void AssertFailureAudited(ConvergenceApiFactory factory, FaultPoint fault)
    {
        var rows = factory.ControlPlane().Rows("SELECT * FROM org_audit_logs WHERE action = 'organization.onboard' AND org_slug = $org", ("$org", Slug));
        var row = rows.ShouldHaveSingleItem($"exactly one audit row (the FAILURE) for {fault}");
        row["outcome"].ShouldBe("FAILURE");
        row["actor_type"].ShouldBe("ROOT");
        using var details = JsonDocument.Parse((string)row["details"]!);
        details.RootElement.Str("error_class").ShouldBe(nameof(InjectedFaultException));
        details.RootElement.Str("error_message").ShouldBe("internal error");
    }

    private static async Task AssertWorkingOrgAsync(ConvergenceApiFactory factory, OnboardResult retry)
    {
        retry.Body.GetProperty("dataset_created").GetBoolean().ShouldBeTrue();
        factory.Warehouse(Slug).Exists.ShouldBeTrue();
        var db = factory.ControlPlane();
        db.CountForOrg("org_profiles", Slug).ShouldBe(1);
        db.CountForOrg("org_subscriptions", Slug).ShouldBe(1);
        db.CountForOrg("org_usage_quotas", Slug).ShouldBe(1);
        db.CountForOrg("org_api_keys", Slug).ShouldBe(1);
        using var client = factory.OrgClient(retry.ApiKey);
        using var response = await client.GetAsync($"/api/v1/organizations/{Slug}");
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
    }
}
