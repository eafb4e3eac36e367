using System.Net;
using Convergence.Api.Configuration;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Warehouse;

/// <summary>CONVERGENCE_WAREHOUSE=postgres: what it needs, what it refuses without echoing secrets, and that the API runs on it.</summary>
public sealed class PostgresWarehouseSettingsTests
{
    private static ConvergenceSettings Load(Dictionary<string, string?> values) =>
        ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Postgres_WithoutAConnection_NamesTheMissingSetting()
    {
        var error = Should.Throw<InvalidSettingsException>(() => Load(new() { ["CONVERGENCE_WAREHOUSE"] = "postgres" }));

        error.Problems.ShouldHaveSingleItem().ShouldContain("CONVERGENCE_WAREHOUSE_CONNECTION");
    }

    [Theory]
    [InlineData("Host=db;Password=hunter2-secret;NoSuchKey=1")]
    [InlineData("Database=x;Password=hunter2-secret")]
    public void Postgres_WithAnInvalidConnection_NamesTheSettingButNotItsValue(string connection)
    {
        var error = Should.Throw<InvalidSettingsException>(() => Load(new() { ["CONVERGENCE_WAREHOUSE"] = "postgres", ["CONVERGENCE_WAREHOUSE_CONNECTION"] = connection }));

        error.Message.ShouldContain("CONVERGENCE_WAREHOUSE_CONNECTION");
        error.Message.ShouldNotContain("hunter2");
    }

    [Fact]
    public void Postgres_WithAConnection_Loads()
    {
        var settings = Load(new() { ["CONVERGENCE_WAREHOUSE"] = "postgres", ["CONVERGENCE_WAREHOUSE_CONNECTION"] = "Host=db;Database=w" });

        (settings.Warehouse, settings.WarehouseConnection).ShouldBe(("postgres", "Host=db;Database=w"));
    }

    [Fact]
    public async Task Api_OnAPostgresWarehouse_IsReadyAndUsesIt()
    {
        using var factory = new ConvergenceApiFactory(new Dictionary<string, string?>
        {
            ["CONVERGENCE_WAREHOUSE"] = "postgres",
            ["CONVERGENCE_WAREHOUSE_CONNECTION"] = PostgresServer.CreateDatabase("apiwarehouse"),
        });
        using var client = factory.CreateClient();

        using var response = await client.GetAsync("/health/ready");

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        factory.Services.GetRequiredService<IWarehouse>().Kind.ShouldBe("postgres");
    }
}
