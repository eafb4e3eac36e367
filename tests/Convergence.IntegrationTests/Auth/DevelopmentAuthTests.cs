using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Auth;

/// <summary>Development conveniences: a generated root key file, and DISABLE_AUTH.</summary>
public sealed class DevelopmentAuthTests
{
    [Fact]
    public async Task NoRootKeyInDevelopment_GeneratesPrivateKeyFileThatWorksAndIsNeverLogged()
    {
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?> { ["CA_ROOT_API_KEY"] = null });
        using (var health = await factory.AnonymousClient().GetAsync("/health"))
        {
            health.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        var file = Path.Combine(factory.DataDirectory, "root-api-key");
        File.Exists(file).ShouldBeTrue();
        var generated = (await File.ReadAllTextAsync(file)).Trim();
        generated.Length.ShouldBeGreaterThanOrEqualTo(32);
        generated.ShouldNotBe(ConvergenceApiFactory.RootKey);
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(file).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add(ConvergenceApiFactory.RootKeyHeader, generated);
        using (var bootstrap = await client.PostJsonAsync("/api/v1/admin/bootstrap", new { }))
        {
            bootstrap.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        using (var wrong = factory.RootClient())
        using (var refused = await wrong.PostJsonAsync("/api/v1/admin/bootstrap", new { }))
        {
            await refused.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
        }

        var logs = factory.Logs.Records;
        logs.ShouldContain(r => r.Message.Contains(file, StringComparison.Ordinal), "the log says where the key is");
        logs.SelectMany(r => r.AllText()).ShouldNotContain(t => t.Contains(generated, StringComparison.Ordinal), "the log never says what the key is");
    }

    [Fact]
    public async Task NoRootKeyInDevelopment_ReusesTheGeneratedKeyAcrossRestarts()
    {
        var dataDirectory = ConvergenceApiFactory.NewTemporaryDirectory();
        try
        {
            string first;
            await using (var one = new ConvergenceApiFactory(new Dictionary<string, string?> { ["CA_ROOT_API_KEY"] = null }, dataDirectory))
            {
                _ = one.Services;
                first = await File.ReadAllTextAsync(Path.Combine(dataDirectory, "root-api-key"));
            }

            await using var two = new ConvergenceApiFactory(new Dictionary<string, string?> { ["CA_ROOT_API_KEY"] = null }, dataDirectory);
            _ = two.Services;
            (await File.ReadAllTextAsync(Path.Combine(dataDirectory, "root-api-key"))).ShouldBe(first);
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(dataDirectory);
        }
    }

    [Fact]
    public async Task DisableAuthInDevelopment_AnonymousActsAsRoot()
    {
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?> { ["DISABLE_AUTH"] = "true" });
        using var client = factory.AnonymousClient();

        using var response = await client.PostJsonAsync("/api/v1/admin/bootstrap", new { });

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        factory.ControlPlane().Rows("SELECT actor_type FROM org_audit_logs WHERE action = 'platform.bootstrap'").ShouldHaveSingleItem()["actor_type"].ShouldBe("ROOT");
    }
}
