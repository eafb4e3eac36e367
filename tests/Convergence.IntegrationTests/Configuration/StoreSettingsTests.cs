using Convergence.Api.Configuration;
using Microsoft.Extensions.Configuration;

namespace Convergence.IntegrationTests.Configuration;

/// <summary>CONVERGENCE_STORE=postgres needs a valid CONVERGENCE_STORE_CONNECTION, and errors never echo its password.</summary>
public sealed class StoreSettingsTests
{
    private const string Password = "s3cr3t-Pa55word";

    private static ConvergenceSettings Load(Dictionary<string, string?> values) =>
        ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Load_PostgresWithoutConnection_ThrowsNamingTheConnectionSetting()
    {
        var ex = Should.Throw<InvalidSettingsException>(() => Load(new() { ["CONVERGENCE_STORE"] = "postgres" }));

        ex.Problems.ShouldHaveSingleItem().ShouldContain("CONVERGENCE_STORE_CONNECTION");
    }

    [Theory]
    [InlineData("Host=db;Password=" + Password + ";Bogus Key=1")]
    [InlineData("Password=" + Password + ";Database=convergence")]
    [InlineData("Host=db;Port=not-a-port;Password=" + Password)]
    public void Load_PostgresWithInvalidConnection_ThrowsNamingTheSettingWithoutThePassword(string connection)
    {
        var ex = Should.Throw<InvalidSettingsException>(() => Load(new() { ["CONVERGENCE_STORE"] = "postgres", ["CONVERGENCE_STORE_CONNECTION"] = connection }));

        ex.Problems.ShouldHaveSingleItem().ShouldContain("CONVERGENCE_STORE_CONNECTION");
        ex.Message.ShouldNotContain(Password);
    }

    [Fact]
    public void ToString_NeverPrintsTheRootKeyOrTheConnectionPassword()
    {
        var rootKey = new string('k', 40);
        var settings = Load(new() { ["CA_ROOT_API_KEY"] = rootKey, ["CONVERGENCE_STORE"] = "postgres", ["CONVERGENCE_STORE_CONNECTION"] = "Host=db;Password=" + Password });

        settings.ToString().ShouldNotContain(Password);
        settings.ToString().ShouldNotContain(rootKey);
        settings.ToString().ShouldContain("Store = postgres");
    }

    [Fact]
    public void Load_PostgresWithConnection_KeepsItAndTheWarehouseStaysSqlite()
    {
        var settings = Load(new() { ["CONVERGENCE_STORE"] = "POSTGRES", ["CONVERGENCE_STORE_CONNECTION"] = "Host=127.0.0.1;Port=5432;Database=convergence;Username=app;Password=" + Password });

        settings.Store.ShouldBe("postgres");
        settings.StoreConnection.ShouldNotBeNull().ShouldContain("Database=convergence");
        settings.Warehouse.ShouldBe("sqlite");
    }

    [Fact]
    public void Load_Sqlite_NeedsNoConnection()
    {
        var settings = Load([]);

        settings.Store.ShouldBe("sqlite");
        settings.StoreConnection.ShouldBeNull();
    }
}
