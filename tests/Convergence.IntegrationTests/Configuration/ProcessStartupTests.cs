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
}
