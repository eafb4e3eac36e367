using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Integrations;

/// <summary>
/// SPEC §10.7: unique fake credentials go through every integration path (accepted, refused, pending, GCP keys,
/// validate, status, delete, bad requests); none of them may appear in any log call at any level, any response
/// body, or any byte of the files the service stores (SQLite databases and their journals, the key ring).
/// </summary>
public sealed class IntegrationSecretsCanaryTests
{
    [Fact]
    public async Task Credentials_NeverAppearInLogsResponsesOrStoredFiles()
    {
        await using var providers = await FakeProviders.StartAsync();
        await using var google = await FakeGoogleKms.StartAsync();
        var settings = IntegrationsApiTests.Settings(providers, google);
        settings["Logging:LogLevel:Default"] = "Trace";
        settings["Logging:LogLevel:Microsoft"] = "Trace";
        settings["Logging:LogLevel:System"] = "Trace";
        using var factory = new ConvergenceApiFactory(settings);
        google.Now = () => factory.Clock.GetUtcNow();
        await factory.BootstrapAsync();
        var org = await factory.OnboardAsync("canary");
        using var client = factory.OrgClient(org.ApiKey);
        var bodies = new List<string>();

        async Task CallAsync(HttpMethod method, string provider, string action, object? body, HttpStatusCode expected)
        {
            var path = $"/api/v1/integrations/{org.Slug}{(provider.Length > 0 ? "/" + provider : "")}{(action.Length > 0 ? "/" + action : "")}";
            using var request = new HttpRequestMessage(method, path)
            {
                Content = body is null ? null : new StringContent(body as string ?? System.Text.Json.JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
            };
            using var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            bodies.Add(text);
            response.StatusCode.ShouldBe(expected, $"{method} {path}: {text}");
        }

        var refused = "sk-proj-CANARYREFUSED" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        var pending = "sk-ant-api03-CANARYPENDING" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        var gcpJson = google.ServiceAccountJson();
        var pemLines = JsonNode.Parse(gcpJson)!["private_key"]!.GetValue<string>().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var secrets = new List<string> { FakeProviders.OpenAiAdminKey, FakeProviders.DeepSeekKey, refused, pending, pemLines[1], pemLines[^2] };

        await CallAsync(HttpMethod.Post, "openai", "setup", new { credential = FakeProviders.OpenAiAdminKey, credential_name = "canary" }, HttpStatusCode.Created);
        await CallAsync(HttpMethod.Post, "openai", "setup", new { credential = refused }, HttpStatusCode.UnprocessableEntity);
        await CallAsync(HttpMethod.Post, "openai", "validate", null, HttpStatusCode.OK);
        await CallAsync(HttpMethod.Post, "deepseek", "setup", new { credential = FakeProviders.DeepSeekKey }, HttpStatusCode.Created);
        providers.Mode = "500";
        await CallAsync(HttpMethod.Post, "anthropic", "setup", new { credential = pending }, HttpStatusCode.Created);
        providers.Mode = "revoked";
        await CallAsync(HttpMethod.Post, "deepseek", "validate", null, HttpStatusCode.OK);
        await CallAsync(HttpMethod.Post, "anthropic", "validate", null, HttpStatusCode.OK);
        providers.Mode = "ok";
        await CallAsync(HttpMethod.Post, "gcp", "setup", new { credential = JsonNode.Parse(gcpJson) }, HttpStatusCode.Created);
        await CallAsync(HttpMethod.Post, "gcp", "validate", null, HttpStatusCode.OK);
        var external = JsonNode.Parse(gcpJson)!;
        external["type"] = "external_account";
        await CallAsync(HttpMethod.Post, "gcp", "setup", new { credential = external }, HttpStatusCode.UnprocessableEntity);
        await CallAsync(HttpMethod.Post, "openai", "setup", $"{{\"credential\": \"{refused}\", \"unknown\": 1}}", HttpStatusCode.BadRequest);
        await CallAsync(HttpMethod.Post, "openai", "setup", $"{{\"credential\": \"{refused}", HttpStatusCode.BadRequest);
        await CallAsync(HttpMethod.Get, "", "", null, HttpStatusCode.OK);
        await CallAsync(HttpMethod.Get, "gcp", "", null, HttpStatusCode.OK);
        await CallAsync(HttpMethod.Delete, "deepseek", "", null, HttpStatusCode.OK);
        using (var runs = await client.GetAsync($"/api/v1/organizations/{org.Slug}/comprehensive-view"))
        {
            bodies.Add(await runs.Content.ReadAsStringAsync());
        }

        var logs = factory.Logs.Records.SelectMany(r => r.AllText().Select(t => $"[{r.Category} {r.EventId}] {t}")).ToList();
        logs.ShouldNotBeEmpty();
        var files = Directory.EnumerateFiles(factory.DataDirectory, "*", SearchOption.AllDirectories).ToList();
        var controlPlane = factory.ControlPlane();
        // On PostgreSQL the stored state is in the server, not the data folder: every value of every table is read back.
        var stored = controlPlane.IsPostgres
            ? controlPlane.AllText() + "\n" + string.Join("\n", factory.Warehouse(org.Slug).Tables().SelectMany(t => factory.Warehouse(org.Slug).Rows($"SELECT * FROM {t}")).SelectMany(r => r.Values).Select(v => v?.ToString()))
            : null;
        if (stored is null)
        {
            files.ShouldContain(f => f.EndsWith("organizations.sqlite", StringComparison.Ordinal));
        }
        else
        {
            stored.ShouldContain("canary", Case.Sensitive, "the dump holds the org's rows");
        }

        foreach (var secret in secrets)
        {
            logs.Where(l => l.Contains(secret, StringComparison.Ordinal)).Select(l => l.Replace(secret, "«SECRET»", StringComparison.Ordinal)).ShouldBeEmpty($"log lines carry {secret[..12]}…");
            bodies.ShouldNotContain(b => b.Contains(secret, StringComparison.Ordinal), $"a response carries {secret[..12]}…");
            (stored?.Contains(secret, StringComparison.Ordinal) ?? false).ShouldBeFalse($"the database holds {secret[..12]}… in clear");
            var needle = Encoding.UTF8.GetBytes(secret);
            foreach (var file in files)
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var copy = new MemoryStream();
                await stream.CopyToAsync(copy);
                copy.ToArray().AsSpan().IndexOf(needle).ShouldBe(-1, $"{Path.GetFileName(file)} holds {secret[..12]}… in clear");
            }
        }
    }
}
