using System.Text;
using Convergence.Core.Integrations;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Convergence.IntegrationTests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Integrations;

/// <summary>The credential vault on the real SQLite store and local key ring: encrypted, bound, one active per provider.</summary>
public sealed class CredentialVaultTests : IAsyncLifetime, IDisposable
{
    private readonly ConvergenceApiFactory _factory = new();

    private CredentialVault Vault => _factory.Services.GetRequiredService<CredentialVault>();

    private IControlPlaneStore Store => _factory.Services.GetRequiredService<IControlPlaneStore>();

    public async Task InitializeAsync()
    {
        await _factory.BootstrapAsync();
        await _factory.OnboardAsync("vault_a");
        await _factory.OnboardAsync("vault_b");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Store_ThenDecrypt_RoundTripsAndKeepsNoPlaintext()
    {
        var secret = "sk-admin-canary-" + Guid.NewGuid().ToString("N");
        var org = OrgSlug.From("vault_a");

        var stored = await Vault.StoreAsync(org, IntegrationProvider.OpenAi, "prod admin key", Encoding.UTF8.GetBytes(secret),
            new Dictionary<string, string> { ["key_kind"] = "admin" }, CredentialStatus.Valid, null, CancellationToken.None);

        stored.EncryptedCredential.ShouldNotContain(secret);
        var found = (await Store.FindActiveCredentialAsync(org, IntegrationProvider.OpenAi, CancellationToken.None)).ShouldNotBeNull();
        found.CredentialId.ShouldBe(stored.CredentialId);
        found.Metadata["key_kind"].ShouldBe("admin");
        Encoding.UTF8.GetString((await Vault.DecryptAsync(org, IntegrationProvider.OpenAi, CancellationToken.None)).ShouldNotBeNull()).ShouldBe(secret);

        SqlitePools.ClearAsIfProcessRestarted(_factory.DataDirectory);
        foreach (var file in Directory.EnumerateFiles(_factory.DataDirectory, "*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(file);
            Encoding.UTF8.GetString(bytes).ShouldNotContain(secret, Case.Sensitive, file);
            Encoding.Unicode.GetString(bytes).ShouldNotContain(secret, Case.Sensitive, file);
        }
    }

    [Fact]
    public async Task Ciphertext_MovedToAnotherOrgProviderOrRow_DoesNotDecrypt()
    {
        var kms = _factory.Services.GetRequiredService<IKeyManagementService>();
        var org = OrgSlug.From("vault_a");
        var stored = await Vault.StoreAsync(org, IntegrationProvider.Anthropic, "k", "sk-ant-secret"u8.ToArray(), new Dictionary<string, string>(), CredentialStatus.Pending, null, CancellationToken.None);

        var elsewhere = new[]
        {
            CredentialVault.Context(OrgSlug.From("vault_b"), IntegrationProvider.Anthropic, stored.CredentialId),
            CredentialVault.Context(org, IntegrationProvider.OpenAi, stored.CredentialId),
            CredentialVault.Context(org, IntegrationProvider.Anthropic, "cred_other"),
        };
        foreach (var context in elsewhere)
        {
            await Should.ThrowAsync<KmsDecryptionException>(() => kms.DecryptAsync(stored.EncryptedCredential, context, CancellationToken.None));
        }

        (await kms.DecryptAsync(stored.EncryptedCredential, CredentialVault.Context(org, IntegrationProvider.Anthropic, stored.CredentialId), CancellationToken.None))
            .ShouldBe("sk-ant-secret"u8.ToArray());
    }

    [Fact]
    public async Task Store_Twice_KeepsOneActivePerProvider_AndDeactivateLeavesNone()
    {
        var org = OrgSlug.From("vault_b");
        await Vault.StoreAsync(org, IntegrationProvider.DeepSeek, "first", "one"u8.ToArray(), new Dictionary<string, string>(), CredentialStatus.Valid, null, CancellationToken.None);
        var second = await Vault.StoreAsync(org, IntegrationProvider.DeepSeek, "second", "two"u8.ToArray(), new Dictionary<string, string>(), CredentialStatus.Invalid, "401 from provider", CancellationToken.None);
        await Vault.StoreAsync(org, IntegrationProvider.Gcp, "sa", "{}"u8.ToArray(), new Dictionary<string, string>(), CredentialStatus.Pending, null, CancellationToken.None);

        var active = await Store.ListActiveCredentialsAsync(org, CancellationToken.None);
        active.Select(c => c.Provider.RouteName).ShouldBe(["deepseek", "gcp"]);
        active.Single(c => c.Provider == IntegrationProvider.DeepSeek).CredentialId.ShouldBe(second.CredentialId);
        (await Vault.DecryptAsync(org, IntegrationProvider.DeepSeek, CancellationToken.None)).ShouldBe("two"u8.ToArray());

        (await Store.DeactivateCredentialAsync(org, IntegrationProvider.DeepSeek, DateTimeOffset.UtcNow, CancellationToken.None)).ShouldBeTrue();
        (await Vault.DecryptAsync(org, IntegrationProvider.DeepSeek, CancellationToken.None)).ShouldBeNull();
        (await Store.DeactivateCredentialAsync(org, IntegrationProvider.DeepSeek, DateTimeOffset.UtcNow, CancellationToken.None)).ShouldBeFalse();
    }

    [Theory]
    [InlineData("gcp", "GCP_SA")]
    [InlineData("openai", "OPENAI")]
    [InlineData("anthropic", "ANTHROPIC")]
    [InlineData("deepseek", "DEEPSEEK")]
    public void Provider_RouteAndStoredNames_MapBothWays(string route, string stored)
    {
        IntegrationProvider.TryFromRoute(route, out var provider).ShouldBeTrue();
        provider.StoredName.ShouldBe(stored);
        IntegrationProvider.FromStored(stored).ShouldBe(provider);
        IntegrationProvider.TryFromRoute("aws", out _).ShouldBeFalse();
    }
}
