using Convergence.Api.Configuration;
using Convergence.Core.Kms;
using Convergence.Core.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Support;

/// <summary>Checks the test harness itself: settings reach Program, and the fakes are what the app uses.</summary>
public sealed class FactoryPlumbingTests
{
    [Fact]
    public async Task UseSetting_ReachesConvergenceSettings_BeforeProgramReadsThem()
    {
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?>
        {
            ["RATE_LIMIT_REQUESTS_PER_MINUTE"] = "7",
            ["CORS_ORIGINS"] = "https://app.example.com",
            ["CONVERGENCE_MAX_REQUEST_BODY_BYTES"] = "4096",
        });

        var settings = factory.Services.GetRequiredService<ConvergenceSettings>();

        settings.DataDirectory.ShouldBe(Path.GetFullPath(factory.DataDirectory));
        settings.RootApiKey.ShouldBe(ConvergenceApiFactory.RootKey);
        settings.RateLimitPerMinute.ShouldBe(7);
        settings.CorsOrigins.ShouldBe(["https://app.example.com"]);
        settings.MaxRequestBodyBytes.ShouldBe(4096);
        settings.Environment.Name.ShouldBe("development");
        Directory.Exists(factory.DatasetsDirectory).ShouldBeTrue();
    }

    [Fact]
    public async Task ConfigureTestServices_ReplacesClockAndDecoratesAdapters()
    {
        await using var factory = new ConvergenceApiFactory();

        factory.Services.GetRequiredService<TimeProvider>().ShouldBeSameAs(factory.Clock);
        factory.Services.GetRequiredService<IControlPlaneStore>().ShouldBeOfType<FaultyControlPlaneStore>();
        factory.Services.GetRequiredService<IWarehouse>().ShouldBeOfType<FaultyWarehouse>();
        factory.Services.GetRequiredService<IKeyManagementService>().ShouldBeOfType<FaultyKeyManagementService>();
    }

    [Fact]
    public async Task Dispose_DeletesTheTemporaryDataDirectory()
    {
        string dataDirectory;
        await using (var factory = new ConvergenceApiFactory(ConvergenceApiFactory.OnSqlite()))
        {
            await factory.BootstrapAsync();
            dataDirectory = factory.DataDirectory;
            File.Exists(factory.CentralDatabasePath).ShouldBeTrue();
        }

        Directory.Exists(dataDirectory).ShouldBeFalse();
    }

    [Fact]
    public async Task InvalidSettings_ProgramReturnsWithoutBuildingTheHost()
    {
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?> { ["RATE_LIMIT_REQUESTS_PER_MINUTE"] = "zero" });

        // Program writes the problem to stderr and returns; the factory sees an entry point that never built a host.
        var ex = Should.Throw<InvalidOperationException>(() => factory.CreateClient());
        ex.Message.ShouldContain("without ever building an IHost", Case.Insensitive);
    }
}
