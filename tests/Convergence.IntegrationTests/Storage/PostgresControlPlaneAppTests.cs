using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Convergence.IntegrationTests.Storage;

/// <summary>The whole service with CONVERGENCE_STORE=postgres (the warehouse stays SQLite): bootstrap, onboard, read back.</summary>
public sealed class PostgresControlPlaneAppTests
{
    [Fact]
    public async Task Api_WithPostgresStore_BootstrapsOnboardsAndReadsTheOrgBack()
    {
        var connection = PostgresServer.CreateDatabase("cpapp");
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?>
        {
            ["CONVERGENCE_STORE"] = "postgres",
            ["CONVERGENCE_STORE_CONNECTION"] = connection,
            ["CONVERGENCE_QUEUE_POLL_SECONDS"] = "3600",
        });
        factory.Services.GetRequiredService<IControlPlaneStore>().Kind.ShouldBe("postgres");

        var bootstrap = await factory.BootstrapAsync();
        bootstrap.GetProperty("dataset_created").GetBoolean().ShouldBeTrue();
        var acme = await factory.OnboardAsync("pg_acme");

        using (var org = factory.OrgClient(acme.ApiKey))
        using (var response = await org.GetAsync("/api/v1/organizations/pg_acme"))
        {
            response.StatusCode.ShouldBe(HttpStatusCode.OK);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            body.GetRawText().ShouldContain("pg_acme");
        }

        using (var org = factory.OrgClient(acme.ApiKey))
        using (var response = await org.GetAsync("/api/v1/pipelines/runs"))
        {
            response.StatusCode.ShouldBe(HttpStatusCode.OK);
        }

        // The rows are in PostgreSQL, not in a SQLite file of the data folder.
        factory.ControlPlane().Exists.ShouldBeFalse();
        await using var database = new NpgsqlConnection(connection);
        await database.OpenAsync();
        await using var count = new NpgsqlCommand("SELECT COUNT(*) FROM organizations.org_profiles WHERE org_slug = 'pg_acme'", database);
        ((long)(await count.ExecuteScalarAsync())!).ShouldBe(1);
    }
}
