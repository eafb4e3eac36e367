using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Integrations;

/// <summary>
/// The integration endpoints end to end: setup, validate, status and delete for every provider, run as pipelines
/// against loopback fakes of the providers and of Google's token endpoint.
/// </summary>
public sealed class IntegrationsApiTests : IAsyncLifetime
{
    private FakeProviders _providers = null!;
    private FakeGoogleKms _google = null!;
    private ConvergenceApiFactory _factory = null!;

    public async Task InitializeAsync()
    {
        _providers = await FakeProviders.StartAsync();
        _google = await FakeGoogleKms.StartAsync();
        _factory = new ConvergenceApiFactory(Settings(_providers, _google));
        _google.Now = () => _factory.Clock.GetUtcNow();
        await _factory.BootstrapAsync();
    }

    public async Task DisposeAsync()
    {
        _factory.Dispose();
        await _google.DisposeAsync();
        await _providers.DisposeAsync();
    }

    internal static Dictionary<string, string?> Settings(FakeProviders providers, FakeGoogleKms google, int checkTimeoutSeconds = 10) => new()
    {
        ["OPENAI_BASE_URL"] = providers.OpenAiBase.AbsoluteUri,
        ["ANTHROPIC_BASE_URL"] = providers.AnthropicBase.AbsoluteUri,
        ["DEEPSEEK_BASE_URL"] = providers.DeepSeekBase.AbsoluteUri,
        ["GCP_TOKEN_URL"] = google.TokenUrl.AbsoluteUri,
        ["INTEGRATION_CHECK_TIMEOUT_SECONDS"] = checkTimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public static TheoryData<string, string> GoodKeys() => new()
    {
        { "openai", FakeProviders.OpenAiAdminKey },
        { "anthropic", FakeProviders.AnthropicAdminKey },
        { "deepseek", FakeProviders.DeepSeekKey },
    };

    [Theory]
    [MemberData(nameof(GoodKeys))]
    public async Task Setup_AcceptedKey_IsStoredEncryptedAsValidAndSeedsThePriceList(string provider, string key)
    {
        var org = await _factory.OnboardAsync("ok_" + provider);
        using var client = _factory.OrgClient(org.ApiKey);

        using var response = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/{provider}/setup", new { credential = key, credential_name = "prod key", metadata = new { team = "finops" } });

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.Created);
        body.GetProperty("success").GetBoolean().ShouldBeTrue();
        body.Str("validation_status").ShouldBe("VALID");
        var integration = body.GetProperty("integration");
        integration.Str("credential_name").ShouldBe("prod key");
        integration.GetProperty("metadata").Str("team").ShouldBe("finops");
        integration.GetProperty("last_validated_at").ValueKind.ShouldBe(JsonValueKind.String);
        body.GetProperty("seeded_tables").GetProperty($"{provider}_pricing").GetInt32().ShouldBeGreaterThan(0);
        if (provider == "openai")
        {
            body.GetProperty("seeded_tables").GetProperty("openai_subscriptions").GetInt32().ShouldBe(5);
        }
        response.Headers.Location!.OriginalString.ShouldBe($"/api/v1/integrations/{org.Slug}/{provider}");

        var status = await (await client.GetAsync($"/api/v1/integrations/{org.Slug}/{provider}")).ShouldBeJsonAsync(HttpStatusCode.OK);
        status.Str("validation_status").ShouldBe("VALID");
        status.GetProperty("configured").GetBoolean().ShouldBeTrue();

        var row = _factory.ControlPlane().Rows("SELECT encrypted_credential, key_version FROM org_integration_credentials WHERE org_slug = $o AND is_active = TRUE", ("$o", org.Slug)).Single();
        ((string)row["encrypted_credential"]!).ShouldNotContain(key);
        ((string)row["encrypted_credential"]!).Length.ShouldBeGreaterThan(key.Length);

        var run = _factory.ControlPlane().Rows("SELECT status, pipeline_path FROM org_meta_pipeline_runs WHERE pipeline_logging_id = $id", ("$id", body.Str("pipeline_logging_id"))).Single();
        run["status"].ShouldBe("COMPLETED");
        run["pipeline_path"].ShouldBe($"integrations/{provider}/setup");
    }

    [Theory]
    [InlineData("openai", "sk-proj-refused111111111111111", "Incorrect API key provided")]
    [InlineData("anthropic", "sk-ant-api03-refused11111111", "invalid x-api-key")]
    [InlineData("deepseek", "sk-deepseekrefused1111111111", "Authentication Fails")]
    public async Task Setup_RefusedKey_Is422WithTheProvidersMessageAndStoresNothing(string provider, string key, string message)
    {
        var org = await _factory.OnboardAsync("no_" + provider);
        using var client = _factory.OrgClient(org.ApiKey);

        using var response = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/{provider}/setup", new { credential = key });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        var error = problem.Json.GetProperty("errors").GetProperty("credential")[0].GetString()!;
        error.ShouldContain(message);
        problem.Text.ShouldNotContain(key);
        problem.Text.ShouldNotContain(key[^10..]);
        _factory.ControlPlane().CountForOrg("org_integration_credentials", org.Slug).ShouldBe(0);
        var status = await (await client.GetAsync($"/api/v1/integrations/{org.Slug}/{provider}")).ShouldBeJsonAsync(HttpStatusCode.OK);
        status.Str("validation_status").ShouldBe("NOT_CONFIGURED");
    }

    [Theory]
    [InlineData("429", "(429)")]
    [InlineData("500", "(500)")]
    [InlineData("hang", "did not answer within 1 s")]
    public async Task Setup_ProviderUnreachable_StoresThePendingCredentialAndValidateLaterMakesItValid(string mode, string reason)
    {
        // A hang is cut by the check's own limit: 1 s here, so the test does not wait 10.
        using var hangFactory = mode == "hang" ? new ConvergenceApiFactory(Settings(_providers, _google, checkTimeoutSeconds: 1)) : null;
        var factory = hangFactory ?? _factory;
        if (hangFactory is not null)
        {
            await hangFactory.BootstrapAsync();
        }

        var org = await factory.OnboardAsync("pending_" + mode);
        using var client = factory.OrgClient(org.ApiKey);
        _providers.Mode = mode;

        using (var response = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/setup", new { credential = FakeProviders.OpenAiKey }))
        {
            var body = await response.ShouldBeJsonAsync(HttpStatusCode.Created);
            body.Str("validation_status").ShouldBe("PENDING");
            body.Str("message").ShouldContain(reason);
            body.GetProperty("integration").Str("last_error").ShouldContain(reason);
        }

        _providers.Mode = "ok";
        using (var validate = await client.PostAsync($"/api/v1/integrations/{org.Slug}/openai/validate", null))
        {
            var body = await validate.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.GetProperty("success").GetBoolean().ShouldBeTrue();
            body.Str("validation_status").ShouldBe("VALID");
            body.GetProperty("integration").GetProperty("last_error").ValueKind.ShouldBe(JsonValueKind.Null);
        }
    }

    [Fact]
    public async Task Validate_KeyRevokedAtTheProvider_RecordsInvalidWithTheReasonAndKeepsTheRow()
    {
        var org = await _factory.OnboardAsync("revoked");
        using var client = _factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/anthropic/setup", new { credential = FakeProviders.AnthropicKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        _providers.Mode = "revoked";

        using var validate = await client.PostAsync($"/api/v1/integrations/{org.Slug}/anthropic/validate", null);

        var body = await validate.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("success").GetBoolean().ShouldBeFalse();
        body.Str("validation_status").ShouldBe("INVALID");
        body.GetProperty("integration").Str("last_error").ShouldContain("invalid x-api-key");
        var listed = await (await client.GetAsync($"/api/v1/integrations/{org.Slug}")).ShouldBeJsonAsync(HttpStatusCode.OK);
        listed.GetProperty("integrations").EnumerateArray().Single(i => i.Str("provider") == "anthropic").Str("validation_status").ShouldBe("INVALID");
    }

    [Fact]
    public async Task Validate_WithoutAnIntegration_Is404()
    {
        var org = await _factory.OnboardAsync("none");
        using var client = _factory.OrgClient(org.ApiKey);

        using var response = await client.PostAsync($"/api/v1/integrations/{org.Slug}/deepseek/validate", null);

        (await response.ShouldBeProblemAsync(HttpStatusCode.NotFound)).Text.ShouldContain("deepseek");
    }

    [Fact]
    public async Task List_ShowsEveryProviderWithItsState()
    {
        var org = await _factory.OnboardAsync("listing");
        using var client = _factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/deepseek/setup", new { credential = FakeProviders.DeepSeekKey })).StatusCode.ShouldBe(HttpStatusCode.Created);

        var body = await (await client.GetAsync($"/api/v1/integrations/{org.Slug}")).ShouldBeJsonAsync(HttpStatusCode.OK);

        body.GetProperty("integrations").EnumerateArray().Select(i => (i.Str("provider"), i.Str("validation_status")))
            .ShouldBe([("gcp", "NOT_CONFIGURED"), ("openai", "NOT_CONFIGURED"), ("anthropic", "NOT_CONFIGURED"), ("deepseek", "VALID")]);
    }

    [Fact]
    public async Task Delete_DeactivatesErasesTheCiphertextAndAudits()
    {
        var org = await _factory.OnboardAsync("deleting");
        using var client = _factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/setup", new { credential = FakeProviders.OpenAiKey })).StatusCode.ShouldBe(HttpStatusCode.Created);

        using (var delete = await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/openai"))
        {
            (await delete.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("deleted").GetBoolean().ShouldBeTrue();
        }

        var db = _factory.ControlPlane();
        db.Count("org_integration_credentials", "org_slug = $o AND is_active = TRUE", ("$o", org.Slug)).ShouldBe(0);
        db.Count("org_integration_credentials", "org_slug = $o AND encrypted_credential <> ''", ("$o", org.Slug)).ShouldBe(0);
        db.Count("org_audit_logs", "org_slug = $o AND action = 'integration.delete'", ("$o", org.Slug)).ShouldBe(1);
        db.Count("org_audit_logs", "org_slug = $o AND action = 'integration.setup'", ("$o", org.Slug)).ShouldBe(1);
        (await (await client.GetAsync($"/api/v1/integrations/{org.Slug}/openai")).ShouldBeJsonAsync(HttpStatusCode.OK)).Str("validation_status").ShouldBe("NOT_CONFIGURED");
        await (await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/openai")).ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Setup_Again_ReplacesTheCredentialButKeepsTheOrgsPriceEdits()
    {
        var org = await _factory.OnboardAsync("resetup");
        using var client = _factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/setup", new { credential = FakeProviders.OpenAiKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await client.PutAsJsonAsync($"/api/v1/integrations/{org.Slug}/openai/pricing/gpt-4o", new { input_per_mtok = 1.25m, output_per_mtok = 5m, effective_from = "1970-01-01" }))
            .StatusCode.ShouldBe(HttpStatusCode.OK);

        using var again = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/setup", new { credential = FakeProviders.OpenAiAdminKey });

        (await again.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("validation_status").ShouldBe("VALID");
        var prices = await (await client.GetAsync($"/api/v1/integrations/{org.Slug}/openai/pricing")).ShouldBeJsonAsync(HttpStatusCode.OK);
        prices.GetProperty("prices").EnumerateArray().Single(p => p.Str("model_id") == "gpt-4o").GetProperty("input_per_mtok").GetDecimal().ShouldBe(1.25m);
        _factory.ControlPlane().Count("org_integration_credentials", "org_slug = $o AND is_active = TRUE", ("$o", org.Slug)).ShouldBe(1);
        _factory.ControlPlane().Count("org_integration_credentials", "org_slug = $o", ("$o", org.Slug)).ShouldBe(2);
    }

    [Fact]
    public async Task BadRequests_AreProblemsNamingTheField()
    {
        var org = await _factory.OnboardAsync("badreq");
        using var client = _factory.OrgClient(org.ApiKey);
        var setup = $"/api/v1/integrations/{org.Slug}/openai/setup";

        (await (await client.PostJsonAsync(setup, new { credential_name = "x" })).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity))
            .Json.GetProperty("errors").TryGetProperty("credential", out _).ShouldBeTrue();
        (await (await client.PostJsonAsync(setup, new { credential = 42 })).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity))
            .Json.GetProperty("errors").TryGetProperty("credential", out _).ShouldBeTrue();
        (await (await client.PostJsonAsync(setup, new { credential = "two words" })).ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity))
            .Json.GetProperty("errors").TryGetProperty("credential", out _).ShouldBeTrue();
        (await (await client.PostJsonAsync(setup, new { credential = FakeProviders.OpenAiKey, metadata = new { team = 3 } })).ShouldBeProblemAsync(HttpStatusCode.BadRequest))
            .Text.ShouldContain("metadata");
        (await (await client.PostJsonAsync(setup, new { credential = FakeProviders.OpenAiKey, api_key = "x" })).ShouldBeProblemAsync(HttpStatusCode.BadRequest))
            .Text.ShouldContain("api_key");
        await (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/azure/setup", new { credential = "k" })).ShouldBeProblemAsync(HttpStatusCode.NotFound);
        await (await client.GetAsync($"/api/v1/integrations/{org.Slug}/azure")).ShouldBeProblemAsync(HttpStatusCode.NotFound);
        using var malformed = new StringContent("{\"credential\": \"sk-proj-abc", System.Text.Encoding.UTF8, "application/json");
        var problem = await (await client.PostAsync(setup, malformed)).ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        problem.Text.ShouldNotContain("sk-proj-abc");
        _factory.ControlPlane().CountForOrg("org_integration_credentials", org.Slug).ShouldBe(0);
    }

    [Fact]
    public async Task AnotherOrgsKey_IsRefusedOnEveryIntegrationRoute_AndRootMayActForAnOrg()
    {
        var acme = await _factory.OnboardAsync("acme_int");
        var globex = await _factory.OnboardAsync("globex_int");
        using var acmeClient = _factory.OrgClient(acme.ApiKey);
        using var root = _factory.RootClient();
        (await root.PostJsonAsync($"/api/v1/integrations/{globex.Slug}/deepseek/setup", new { credential = FakeProviders.DeepSeekKey })).StatusCode.ShouldBe(HttpStatusCode.Created);

        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, $"/api/v1/integrations/{globex.Slug}"),
            (HttpMethod.Get, $"/api/v1/integrations/{globex.Slug}/deepseek"),
            (HttpMethod.Post, $"/api/v1/integrations/{globex.Slug}/deepseek/setup"),
            (HttpMethod.Post, $"/api/v1/integrations/{globex.Slug}/deepseek/validate"),
            (HttpMethod.Delete, $"/api/v1/integrations/{globex.Slug}/deepseek"),
        })
        {
            using var request = new HttpRequestMessage(method, path) { Content = method == HttpMethod.Post ? JsonContent.Create(new { credential = FakeProviders.DeepSeekKey }) : null };
            using var response = await acmeClient.SendAsync(request);
            response.StatusCode.ShouldBe(HttpStatusCode.Forbidden, $"{method} {path}");
        }

        (await (await root.GetAsync($"/api/v1/integrations/{globex.Slug}/deepseek")).ShouldBeJsonAsync(HttpStatusCode.OK)).Str("validation_status").ShouldBe("VALID");
        (await (await acmeClient.GetAsync($"/api/v1/integrations/{acme.Slug}/deepseek")).ShouldBeJsonAsync(HttpStatusCode.OK)).Str("validation_status").ShouldBe("NOT_CONFIGURED");
        await (await root.GetAsync("/api/v1/integrations/no_such_org")).ShouldBeProblemAsync(HttpStatusCode.NotFound);
        await (await root.PostJsonAsync("/api/v1/integrations/no_such_org/openai/setup", new { credential = FakeProviders.OpenAiKey })).ShouldBeProblemAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Gcp_ServiceAccountKey_IsExchangedForATokenAtTheAllowedEndpointAndStored()
    {
        var org = await _factory.OnboardAsync("gcp_ok");
        using var client = _factory.OrgClient(org.ApiKey);
        var key = JsonNode.Parse(_google.ServiceAccountJson())!;

        using var response = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential = key, credential_name = "billing reader" });

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.Created);
        body.Str("validation_status").ShouldBe("VALID");
        var metadata = body.GetProperty("integration").GetProperty("metadata");
        metadata.Str("client_email").ShouldBe(_google.ClientEmail);
        metadata.Str("project_id").ShouldBe("test-project");
        _google.TokenRequests.ShouldBe(1);
        body.GetProperty("seeded_tables").EnumerateObject().ShouldBeEmpty();

        // The key's text works as well as the object, and validate exchanges it again.
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential = _google.ServiceAccountJson() })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await (await client.PostAsync($"/api/v1/integrations/{org.Slug}/gcp/validate", null)).ShouldBeJsonAsync(HttpStatusCode.OK)).Str("validation_status").ShouldBe("VALID");
        _google.TokenRequests.ShouldBe(3);
    }

    public static TheoryData<string, string> UntrustedKeys() => new()
    {
        { "external_account", "only \"service_account\"" },
        { "authorized_user", "only \"service_account\"" },
        { "token_uri=https://attacker.example/token", "not an allowed token endpoint" },
        { "token_uri=http://169.254.169.254/computeMetadata/v1/token", "not an allowed token endpoint" },
        { "credential_source", "credential_source" },
        { "service_account_impersonation_url", "service_account_impersonation_url" },
        { "not json", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(UntrustedKeys))]
    public async Task Gcp_UntrustedKeyShapes_Are422AndNoRequestLeaves(string variant, string message)
    {
        var org = await _factory.OnboardAsync("gcp_bad_" + _google.TokenRequests + Random.Shared.Next(1000));
        using var client = _factory.OrgClient(org.ApiKey);
        var key = (JsonObject)JsonNode.Parse(_google.ServiceAccountJson())!;
        object credential = key;
        switch (variant)
        {
            case "external_account" or "authorized_user":
                key["type"] = variant;
                break;
            case var v when v.StartsWith("token_uri=", StringComparison.Ordinal):
                key["token_uri"] = v["token_uri=".Length..];
                break;
            case "credential_source":
                key["credential_source"] = new JsonObject { ["file"] = "/etc/passwd" };
                break;
            case "service_account_impersonation_url":
                key["service_account_impersonation_url"] = "http://127.0.0.1:1/impersonate";
                break;
            default:
                credential = "{ not json";
                break;
        }

        using var response = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential });

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").GetProperty("credential")[0].GetString()!.ShouldContain(message);
        problem.Text.ShouldNotContain("PRIVATE KEY");
        _google.TokenRequests.ShouldBe(0);
        _factory.ControlPlane().CountForOrg("org_integration_credentials", org.Slug).ShouldBe(0);
    }

    [Fact]
    public async Task Gcp_KeyTheAccountDoesNotKnow_IsInvalid_AndATokenOutageIsPending()
    {
        var org = await _factory.OnboardAsync("gcp_states");
        using var client = _factory.OrgClient(org.ApiKey);
        using var stranger = RSA.Create(2048);

        using (var refused = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential = _google.ServiceAccountJson(key: stranger) }))
        {
            var problem = await refused.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").GetProperty("credential")[0].GetString()!.ShouldContain("invalid_grant");
        }

        _google.FailNextToken(503);
        using (var pending = await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/gcp/setup", new { credential = _google.ServiceAccountJson() }))
        {
            var body = await pending.ShouldBeJsonAsync(HttpStatusCode.Created);
            body.Str("validation_status").ShouldBe("PENDING");
            body.Str("message").ShouldContain("503");
        }
    }

    [Fact]
    public async Task KeyRotation_ReWrapsLiveCredentialsSkipsErasedOnesAndValidateStillDecrypts()
    {
        var org = await _factory.OnboardAsync("rotating");
        using var client = _factory.OrgClient(org.ApiKey);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/setup", new { credential = FakeProviders.OpenAiKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/openai/setup", new { credential = FakeProviders.OpenAiAdminKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await client.PostJsonAsync($"/api/v1/integrations/{org.Slug}/deepseek/setup", new { credential = FakeProviders.DeepSeekKey })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await client.DeleteAsync($"/api/v1/integrations/{org.Slug}/deepseek")).StatusCode.ShouldBe(HttpStatusCode.OK);
        using var root = _factory.RootClient();

        var rotated = await (await root.PostJsonAsync("/api/v1/admin/kms/rotate", new { })).ShouldBeJsonAsync(HttpStatusCode.OK);

        rotated.GetProperty("failed").GetInt32().ShouldBe(0);
        rotated.GetProperty("rewrapped").GetInt32().ShouldBeGreaterThanOrEqualTo(2, "the live credential and the org's API key copy");
        var validate = await (await client.PostAsync($"/api/v1/integrations/{org.Slug}/openai/validate", null)).ShouldBeJsonAsync(HttpStatusCode.OK);
        validate.Str("validation_status").ShouldBe("VALID");
        _providers.Requests.ShouldContain("GET /openai/v1/organization/projects?limit=1");
    }
}
