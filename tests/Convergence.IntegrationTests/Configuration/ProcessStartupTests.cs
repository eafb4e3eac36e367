using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Configuration;

/// <summary>The real executable refuses unsafe production settings: exit code 2, the reason on stderr.</summary>
public sealed class ProcessStartupTests
{
    [Fact]
    public async Task Main_ProductionWithDisableAuth_ExitsWithCode2AndNamesTheSetting()
    {
        // Everything else is safe, so DISABLE_AUTH is the only reason to refuse.
        var result = await ApiProcess.RunAsync([], new Dictionary<string, string>
        {
            ["ENVIRONMENT"] = "production",
            ["DISABLE_AUTH"] = "true",
            ["CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION"] = "true",
            ["RATE_LIMIT_ENABLED"] = "true",
            ["CORS_ORIGINS"] = string.Empty,
        });

        result.ExitCode.ShouldBe(2, result.ToString());
        result.Stderr.ShouldContain("DISABLE_AUTH");
        result.Stderr.ShouldNotContain("CA_ROOT_API_KEY", Case.Sensitive, "only the unsafe setting is reported");
        result.Stderr.ShouldNotContain(ConvergenceApiFactory.RootKey);
    }

    [Fact]
    public async Task Demo_RunsTheWholeJobOnTheEmbeddedDefaultAndPrintsTheSampleCost()
    {
        var data = ConvergenceApiFactory.NewTemporaryDirectory();
        try
        {
            var result = await ApiProcess.RunAsync(["demo"], new Dictionary<string, string>
            {
                ["CONVERGENCE_DATA_DIR"] = data,
                ["ENVIRONMENT"] = string.Empty,
                ["CA_ROOT_API_KEY"] = string.Empty,
            });

            result.ExitCode.ShouldBe(0, result.ToString());
            result.Stdout.ShouldContain("SAMPLE DATA");
            // The sample usage is generated from a fixed seed and priced with the shipped price lists.
            result.Stdout.ShouldContain("TOTAL                                                  37.71           37.71      46.11");
            result.Stdout.ShouldContain("Security Command Center     0.000032        0.000000   0.000032");
            Directory.Exists(Path.Combine(data, "demo", "datasets")).ShouldBeTrue();
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(data);
        }
    }
}
