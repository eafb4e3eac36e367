using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Logging;

/// <summary>No log call, at any level, carries an API key or the root key, in its message, state, scopes or exception.</summary>
public sealed class LogRedactionTests
{
    [Fact]
    public async Task Logs_OnboardUseRotateRevokeAndFailures_NeverContainAKey()
    {
        await using var factory = new ConvergenceApiFactory(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Trace",
            ["Logging:LogLevel:Microsoft"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
            ["Logging:LogLevel:System"] = "Trace",
        });
        await factory.BootstrapAsync();
        var acme = await factory.OnboardAsync("acme");
        var globex = await factory.OnboardAsync("globex");
        var secrets = new List<string> { ConvergenceApiFactory.RootKey, acme.ApiKey, globex.ApiKey };

        using var root = factory.RootClient();
        using (var acmeClient = factory.OrgClient(acme.ApiKey))
        {
            await ExpectAsync(acmeClient.GetAsync("/api/v1/organizations/acme"), HttpStatusCode.OK);
            await ExpectAsync(acmeClient.GetAsync("/api/v1/organizations/globex"), HttpStatusCode.Forbidden);
            await ExpectAsync(acmeClient.GetAsync("/api/v1/organizations/acme/api-keys"), HttpStatusCode.Forbidden);
        }

        using (var rotate = await root.PostJsonAsync("/api/v1/organizations/acme/api-keys", new { rotate = true, grace_period_seconds = 0 }))
        {
            var body = await rotate.ShouldBeJsonAsync(HttpStatusCode.Created);
            secrets.Add(body.Str("api_key"));
        }

        using (var oldKey = factory.OrgClient(acme.ApiKey))
        {
            await ExpectAsync(oldKey.GetAsync("/api/v1/organizations/acme"), HttpStatusCode.Unauthorized);
        }

        using (var newKey = factory.OrgClient(secrets[^1]))
        {
            await ExpectAsync(newKey.GetAsync("/api/v1/organizations/acme"), HttpStatusCode.OK);
        }

        await ExpectAsync(root.GetAsync("/api/v1/organizations/acme/api-keys"), HttpStatusCode.OK);
        await ExpectAsync(root.DeleteAsync($"/api/v1/organizations/globex/api-keys/{globex.KeyId}"), HttpStatusCode.OK);
        using (var revoked = factory.OrgClient(globex.ApiKey))
        {
            await ExpectAsync(revoked.GetAsync("/api/v1/organizations/globex"), HttpStatusCode.Unauthorized);
        }

        const string wrongRoot = "wrong-root-key-0123456789abcdef0123456789abcdef";
        const string unknownKey = "acme_api_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
        secrets.Add(wrongRoot);
        secrets.Add(unknownKey);
        using (var bad = factory.CreateClient())
        {
            await ExpectAsync(bad.SendAsync(HttpMethod.Get, "/api/v1/organizations/acme", new Dictionary<string, string> { [ConvergenceApiFactory.RootKeyHeader] = wrongRoot }), HttpStatusCode.Unauthorized);
            await ExpectAsync(bad.SendAsync(HttpMethod.Get, "/api/v1/organizations/acme", new Dictionary<string, string> { [ConvergenceApiFactory.ApiKeyHeader] = unknownKey }), HttpStatusCode.Unauthorized);
        }

        // A failing onboarding logs an unhandled error with its exception: that must not carry a key either.
        factory.Faults.Active = FaultPoint.Commit;
        await ExpectAsync(root.PostJsonAsync("/api/v1/organizations/onboard", ConvergenceApiFactory.OnboardBody("initech")), HttpStatusCode.InternalServerError);
        factory.Faults.Active = FaultPoint.None;

        var records = factory.Logs.Records;
        records.Count.ShouldBeGreaterThan(50, "Trace logging must have captured the requests");
        records.ShouldContain(r => r.Level == Microsoft.Extensions.Logging.LogLevel.Error, "the injected failure must have been logged");
        foreach (var record in records)
        {
            foreach (var text in record.AllText())
            {
                foreach (var secret in secrets)
                {
                    text.ShouldNotContain(secret, Case.Sensitive, $"[{record.Level}] {record.Category} ({record.EventId}) logged a key: {record.Message}");
                }

                // The random part alone is just as secret.
                foreach (var secret in secrets.Where(s => s.Contains("_api_", StringComparison.Ordinal)))
                {
                    text.ShouldNotContain(secret[(secret.LastIndexOf("_api_", StringComparison.Ordinal) + 5)..], Case.Sensitive, $"{record.Category} logged a key's random part");
                }
            }
        }
    }

    private static async Task ExpectAsync(Task<HttpResponseMessage> request, HttpStatusCode status)
    {
        using var response = await request;
        var body = await response.ReadBodyAsync();
        body.Status.ShouldBe(status, body.Text);
    }
}
