using System.Net;
using System.Text;
using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Integrations;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.IntegrationTests.Support;
using Convergence.Kms.Google;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Abstractions;

namespace Convergence.IntegrationTests.Kms;

/// <summary>Key-encryption key rotation of the local key ring: old rows keep decrypting, then carry the new version.</summary>
public sealed class KeyRotationTests : IAsyncLifetime, IDisposable
{
    private const string RotateRoute = "/api/v1/admin/kms/rotate";

    private readonly ConvergenceApiFactory _factory = new();

    private CredentialVault Vault => _factory.Services.GetRequiredService<CredentialVault>();

    private IKeyManagementService Kms => _factory.Services.GetRequiredService<IKeyManagementService>();

    private OnboardResult _acme = null!;

    private OnboardResult _globex = null!;

    public async Task InitializeAsync()
    {
        await _factory.BootstrapAsync();
        _acme = await _factory.OnboardAsync("rot_acme");
        _globex = await _factory.OnboardAsync("rot_globex");
        await StoreAsync("rot_acme", IntegrationProvider.OpenAi, "sk-openai-old");
        await StoreAsync("rot_acme", IntegrationProvider.OpenAi, "sk-openai-current"); // the first is now inactive and erased: nothing to re-wrap
        await StoreAsync("rot_acme", IntegrationProvider.Anthropic, "sk-ant-current");
        await StoreAsync("rot_globex", IntegrationProvider.DeepSeek, "sk-ds-current");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Rotate_OldRowsDecryptAndNowCarryTheNewVersion()
    {
        var rows = CiphertextCount();
        AllCiphertexts().ShouldAllBe(c => c.StartsWith("lkr1.1.", StringComparison.Ordinal));
        using var root = _factory.RootClient();

        using var response = await root.PostAsync(RotateRoute, null);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("key_version").GetInt32().ShouldBe(2);
        body.GetProperty("rewrapped").GetInt32().ShouldBe(rows);
        body.GetProperty("failed").GetInt32().ShouldBe(0);
        AllCiphertexts().ShouldAllBe(c => c.StartsWith("lkr1.2.", StringComparison.Ordinal));
        await ShouldDecryptEverythingAsync();
        using var org = _factory.OrgClient(_acme.ApiKey);
        using var stillWorks = await org.GetAsync($"/api/v1/organizations/{_acme.Slug}");
        stillWorks.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Rotate_AfterKeyRingRotationWithoutRewrap_OldRowsStillDecrypt()
    {
        var ring = _factory.Services.GetRequiredService<IKeyEncryptionKeyRotation>();

        ring.Rotate().ShouldBe(2);

        AllCiphertexts().ShouldAllBe(c => c.StartsWith("lkr1.1.", StringComparison.Ordinal));
        await ShouldDecryptEverythingAsync();
        var fresh = await StoreAsync("rot_globex", IntegrationProvider.Anthropic, "sk-ant-new");
        fresh.EncryptedCredential.ShouldStartWith("lkr1.2.");

        using var root = _factory.RootClient();
        using var response = await root.PostJsonAsync(RotateRoute, new { rewrap_only = true });

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("key_version").GetInt32().ShouldBe(2, "rewrap_only adds no version");
        body.GetProperty("rewrapped").GetInt32().ShouldBe(CiphertextCount() - 1);
        body.GetProperty("already_current").GetInt32().ShouldBe(1);
        AllCiphertexts().ShouldAllBe(c => c.StartsWith("lkr1.2.", StringComparison.Ordinal));
        await ShouldDecryptEverythingAsync();
    }

    [Fact]
    public async Task Rotate_ReRunInSmallBatches_IsIdempotentAndPagesThroughEveryRow()
    {
        var service = _factory.Services.GetRequiredService<KeyRotationService>();
        var rows = CiphertextCount();

        var first = await service.RotateAsync(Actor.System(), rewrapOnly: false, batchSize: 1);
        var again = await service.RotateAsync(Actor.System(), rewrapOnly: true, batchSize: 2);

        (first.KeyVersion, first.Rewrapped, first.Failed, first.AlreadyCurrent).ShouldBe((2, rows, 0, 0));
        (again.KeyVersion, again.Rewrapped, again.Failed, again.AlreadyCurrent).ShouldBe((2, 0, 0, rows));
        await ShouldDecryptEverythingAsync();
    }

    [Fact]
    public async Task Rotate_TamperedRow_IsReportedAsFailedAndTheRestAreRewrapped()
    {
        var victim = (await _factory.Services.GetRequiredService<Core.Storage.IControlPlaneStore>()
            .FindActiveCredentialAsync(OrgSlug.From("rot_globex"), IntegrationProvider.DeepSeek, CancellationToken.None)).ShouldNotBeNull();
        var parts = victim.EncryptedCredential.Split('.');
        var payload = System.Buffers.Text.Base64Url.DecodeFromChars(parts[3]);
        payload[^1] ^= 0x01;
        var tampered = $"{parts[0]}.{parts[1]}.{parts[2]}.{System.Buffers.Text.Base64Url.EncodeToString(payload)}";
        var moved = (await Vault.StoreAsync(OrgSlug.From("rot_globex"), IntegrationProvider.Gcp, "sa", "{}"u8.ToArray(), new Dictionary<string, string>(), CredentialStatus.Pending, null, CancellationToken.None));
        SqlitePools.ClearAsIfProcessRestarted(_factory.DataDirectory);
        _factory.ControlPlane().Scalar("UPDATE org_integration_credentials SET encrypted_credential = $c WHERE credential_id = $id", ("$c", tampered), ("$id", victim.CredentialId));
        // A ciphertext copied onto another row fails its context check the same way.
        _factory.ControlPlane().Scalar("UPDATE org_integration_credentials SET encrypted_credential = $c WHERE credential_id = $id", ("$c", AllCiphertexts()[^1]), ("$id", moved.CredentialId));
        var rows = CiphertextCount();
        using var root = _factory.RootClient();

        using var response = await root.PostAsync(RotateRoute, null);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("failed").GetInt32().ShouldBe(2);
        body.GetProperty("rewrapped").GetInt32().ShouldBe(rows - 2);
        body.GetProperty("failed_records").EnumerateArray().Select(r => r.Str("record_id")).ShouldBe([victim.CredentialId, moved.CredentialId], ignoreOrder: true);
        body.GetProperty("failed_records")[0].Str("table").ShouldBe("org_integration_credentials");
        var text = body.GetRawText();
        text.ShouldNotContain(tampered);
        _factory.Logs.Records.SelectMany(r => r.AllText()).ShouldNotContain(t => t.Contains("lkr1.", StringComparison.Ordinal));
        var audit = _factory.ControlPlane().Rows("SELECT outcome, details FROM org_audit_logs WHERE action = 'platform.kms.rotate'").ShouldHaveSingleItem();
        audit["outcome"].ShouldBe(AuditOutcome.Failure);
        audit["details"]!.ToString()!.ShouldNotContain("lkr1.");
        JsonDocument.Parse((string)audit["details"]!).RootElement.GetProperty("failed").GetInt32().ShouldBe(2);
    }

    [Fact]
    public async Task Rotate_IsAuditedWithoutSecrets()
    {
        using var root = _factory.RootClient();
        using (var response = await root.PostAsync(RotateRoute, null))
        {
            await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        }

        var audit = _factory.ControlPlane().Rows("SELECT actor_type, outcome, org_slug, details FROM org_audit_logs WHERE action = 'platform.kms.rotate'").ShouldHaveSingleItem();
        audit["actor_type"].ShouldBe(Actor.RootType);
        audit["outcome"].ShouldBe(AuditOutcome.Success);
        JsonDocument.Parse((string)audit["details"]!).RootElement.GetProperty("key_version").GetInt32().ShouldBe(2);
        audit["details"]!.ToString()!.ShouldNotContain("lkr1.");
    }

    [Fact]
    public async Task Rotate_OrgKey_Is403AndRotatesNothing()
    {
        using var org = _factory.OrgClient(_acme.ApiKey);

        using var response = await org.PostAsync(RotateRoute, null);

        await response.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        AllCiphertexts().ShouldAllBe(c => c.StartsWith("lkr1.1.", StringComparison.Ordinal));
        _factory.Services.GetRequiredService<IKeyEncryptionKeyRotation>().PrimaryVersion.ShouldBe(1);
    }

    [Fact]
    public async Task Store_ListCiphertexts_PagesByIdAndReplaceIsCompareAndSwap()
    {
        var store = _factory.Services.GetRequiredService<Core.Storage.IControlPlaneStore>();
        var seen = new List<string>();
        string? after = null;
        while (true)
        {
            var page = await store.ListCiphertextsAsync(Core.Storage.CiphertextTable.IntegrationCredentials, after, 2, CancellationToken.None);
            page.Count.ShouldBeLessThanOrEqualTo(2);
            seen.AddRange(page.Select(r => r.RecordId));
            if (page.Count < 2)
            {
                break;
            }

            after = page[^1].RecordId;
        }

        seen.Count.ShouldBe(3, "the live credentials; the replaced one was erased");
        seen.ShouldBe(seen.Order(StringComparer.Ordinal).ToList());
        var keys = await store.ListCiphertextsAsync(Core.Storage.CiphertextTable.OrgApiKeys, null, 10, CancellationToken.None);
        keys.Select(k => k.Org.Value).ShouldBe(["rot_acme", "rot_globex"], ignoreOrder: true);
        var first = keys[0];

        (await store.ReplaceCiphertextAsync(first.Table, first.RecordId, "lkr1.9.stale.x", "lkr1.9.new.x", CancellationToken.None)).ShouldBeFalse();
        (await store.ReplaceCiphertextAsync(first.Table, "no_such_key", first.Ciphertext, "lkr1.9.new.x", CancellationToken.None)).ShouldBeFalse();
        (await store.ListCiphertextsAsync(first.Table, null, 10, CancellationToken.None)).Single(k => k.RecordId == first.RecordId).Ciphertext.ShouldBe(first.Ciphertext);
    }

    private int CiphertextCount() => AllCiphertexts().Count;

    private List<string> AllCiphertexts()
    {
        SqlitePools.ClearAsIfProcessRestarted(_factory.DataDirectory);
        var db = _factory.ControlPlane();
        return
        [
            .. db.Rows("SELECT encrypted_credential AS c FROM org_integration_credentials WHERE encrypted_credential <> '' ORDER BY credential_id").Select(r => (string)r["c"]!),
            .. db.Rows("SELECT encrypted_org_api_key AS c FROM org_api_keys ORDER BY org_api_key_id").Select(r => (string)r["c"]!),
        ];
    }

    private async Task ShouldDecryptEverythingAsync()
    {
        Encoding.UTF8.GetString((await Vault.DecryptAsync(OrgSlug.From("rot_acme"), IntegrationProvider.OpenAi, CancellationToken.None))!).ShouldBe("sk-openai-current");
        Encoding.UTF8.GetString((await Vault.DecryptAsync(OrgSlug.From("rot_acme"), IntegrationProvider.Anthropic, CancellationToken.None))!).ShouldBe("sk-ant-current");
        Encoding.UTF8.GetString((await Vault.DecryptAsync(OrgSlug.From("rot_globex"), IntegrationProvider.DeepSeek, CancellationToken.None))!).ShouldBe("sk-ds-current");
        foreach (var onboarded in new[] { _acme, _globex })
        {
            var org = OrgSlug.From(onboarded.Slug);
            var key = (await _factory.Services.GetRequiredService<Core.Storage.IControlPlaneStore>().ListApiKeysAsync(org, CancellationToken.None)).ShouldHaveSingleItem();
            Encoding.UTF8.GetString(await Kms.DecryptAsync(key.EncryptedKey, KmsContext.ForOrgApiKey(org, key.OrgApiKeyId), CancellationToken.None)).ShouldBe(onboarded.ApiKey);
        }
    }

    private Task<IntegrationCredential> StoreAsync(string org, IntegrationProvider provider, string secret) =>
        Vault.StoreAsync(OrgSlug.From(org), provider, "k", Encoding.UTF8.GetBytes(secret), new Dictionary<string, string>(), CredentialStatus.Valid, null, CancellationToken.None);
}

/// <summary>With Google Cloud KMS, rotation is Google's job: the route says so instead of touching rows.</summary>
public sealed class GoogleKmsRotationTests : IAsyncLifetime
{
    private FakeGoogleKms _fake = null!;

    public async Task InitializeAsync() => _fake = await FakeGoogleKms.StartAsync();

    public async Task DisposeAsync() => await _fake.DisposeAsync();

    [Fact]
    public async Task Rotate_WithGoogleKms_Is409ProblemSayingGoogleRotates()
    {
        await using var factory = new ConvergenceApiFactory
        {
            ConfigureServices = services =>
            {
                services.RemoveAll<IKeyEncryptionKeyRotation>();
                services.RemoveAll<IKeyManagementService>();
                services.AddSingleton<IKeyManagementService>(new GoogleCloudKms(
                    new GoogleCloudKmsOptions(_fake.KeyName, _fake.BaseUrl, _fake.ServiceAccountJson(), _fake.TokenUrl, TimeSpan.FromSeconds(10)),
                    TimeProvider.System, NullLogger<GoogleCloudKms>.Instance));
            },
        };
        await factory.BootstrapAsync();
        var requests = _fake.KmsRequests;
        using var root = factory.RootClient();

        using var response = await root.PostAsync("/api/v1/admin/kms/rotate", null);

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        problem.Json.Str("detail").ShouldContain("Google Cloud KMS");
        _fake.KmsRequests.ShouldBe(requests);
    }
}
