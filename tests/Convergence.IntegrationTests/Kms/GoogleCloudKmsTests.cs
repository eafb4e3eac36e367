using System.Security.Cryptography;
using System.Text;
using Convergence.Core.Errors;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.IntegrationTests.Support;
using Convergence.Kms.Google;
using Microsoft.Extensions.Logging.Abstractions;

namespace Convergence.IntegrationTests.Kms;

public sealed class GoogleCloudKmsTests : IAsyncLifetime
{
    private static readonly KmsContext Context = KmsContext.ForOrgApiKey(OrgSlug.From("acme"), "key-1");

    private FakeGoogleKms _fake = null!;

    public async Task InitializeAsync() => _fake = await FakeGoogleKms.StartAsync();

    public async Task DisposeAsync() => await _fake.DisposeAsync();

    private GoogleCloudKms Create(string? keyName = null, string? json = null, int maxRetries = 0) =>
        new(new GoogleCloudKmsOptions(keyName ?? _fake.KeyName, _fake.BaseUrl, json ?? _fake.ServiceAccountJson(), _fake.TokenUrl, TimeSpan.FromSeconds(10), maxRetries),
            TimeProvider.System, NullLogger<GoogleCloudKms>.Instance);

    [Theory]
    [InlineData("sk-live-secret")]
    [InlineData("")]
    public async Task Roundtrip_returns_the_plaintext(string secret)
    {
        using var kms = Create();
        var ciphertext = await kms.EncryptAsync(Encoding.UTF8.GetBytes(secret), Context, default);

        ciphertext.ShouldStartWith("gkms1.");
        ciphertext.ShouldNotContain(secret.Length > 0 ? secret : "\0");
        kms.Kind.ShouldBe("gcp");
        Encoding.UTF8.GetString(await kms.DecryptAsync(ciphertext, Context, default)).ShouldBe(secret);
    }

    public static TheoryData<KmsContext> OtherContexts { get; } = new()
    {
        KmsContext.ForOrgApiKey(OrgSlug.From("globex"), "key-1"),
        new KmsContext(OrgSlug.From("acme"), "provider:openai", "key-1"),
        KmsContext.ForOrgApiKey(OrgSlug.From("acme"), "key-2"),
        new KmsContext(null, "org_api_key", "key-1"),
    };

    [Theory]
    [MemberData(nameof(OtherContexts))]
    public async Task A_ciphertext_is_bound_to_its_org_purpose_and_id(KmsContext other)
    {
        using var kms = Create();
        var ciphertext = await kms.EncryptAsync("secret"u8.ToArray(), Context, default);

        var ex = await Should.ThrowAsync<KmsDecryptionException>(() => kms.DecryptAsync(ciphertext, other, default));
        ex.Message.ShouldContain("400 INVALID_ARGUMENT");
    }

    [Fact]
    public async Task A_tampered_or_foreign_ciphertext_fails_to_decrypt()
    {
        using var kms = Create();
        var ciphertext = await kms.EncryptAsync("secret"u8.ToArray(), Context, default);
        var raw = System.Buffers.Text.Base64Url.DecodeFromChars(ciphertext.AsSpan("gkms1.".Length));
        raw[^1] ^= 0x01;
        var tampered = "gkms1." + System.Buffers.Text.Base64Url.EncodeToString(raw);

        await Should.ThrowAsync<KmsDecryptionException>(() => kms.DecryptAsync(tampered, Context, default));
        await Should.ThrowAsync<KmsDecryptionException>(() => kms.DecryptAsync("gkms1.AAAA", Context, default));
        await Should.ThrowAsync<KmsDecryptionException>(() => kms.DecryptAsync("lkr1.1.AAAA.AAAA", Context, default));
        await Should.ThrowAsync<KmsDecryptionException>(() => kms.DecryptAsync("gkms1.not base64!", Context, default));
    }

    [Fact]
    public async Task Permission_denied_names_the_key_and_status_but_never_the_token()
    {
        const string otherKey = "projects/test-project/locations/europe-west1/keyRings/convergence/cryptoKeys/other";
        using var kms = Create(keyName: otherKey);

        var ex = await Should.ThrowAsync<KmsAccessDeniedException>(() => kms.EncryptAsync("secret"u8.ToArray(), Context, default));

        ex.StatusCode.ShouldBe(403);
        ex.Message.ShouldContain(otherKey);
        ex.Message.ShouldContain("HTTP 403 PERMISSION_DENIED");
        _fake.IssuedTokens.ShouldNotBeEmpty();
        foreach (var token in _fake.IssuedTokens)
        {
            ex.ToString().ShouldNotContain(token);
        }
    }

    [Theory]
    [InlineData(500)]
    [InlineData(503)]
    [InlineData(429)]
    public async Task Server_errors_and_throttling_are_transient(int status)
    {
        using var kms = Create(maxRetries: 0);
        _fake.FailNext(status, retryAfterSeconds: status == 429 ? 7 : null);

        var ex = await Should.ThrowAsync<TransientException>(() => kms.EncryptAsync("secret"u8.ToArray(), Context, default));

        ex.Message.ShouldContain($"HTTP {status}");
        ex.RetryAfter.ShouldBe(status == 429 ? TimeSpan.FromSeconds(7) : null);
        TransientException.IsTransient(ex).ShouldBeTrue();
    }

    [Fact]
    public async Task Transient_failures_are_retried_a_bounded_number_of_times()
    {
        using var kms = Create(maxRetries: 2);
        _fake.FailNext(500, count: 2);
        var ciphertext = await kms.EncryptAsync("secret"u8.ToArray(), Context, default);
        _fake.KmsRequests.ShouldBe(3);

        _fake.FailNext(503, count: 3);
        await Should.ThrowAsync<TransientException>(() => kms.DecryptAsync(ciphertext, Context, default));
        _fake.KmsRequests.ShouldBe(6);

        (await kms.DecryptAsync(ciphertext, Context, default)).ShouldBe("secret"u8.ToArray());
    }

    [Fact]
    public async Task Malformed_json_is_a_protocol_error()
    {
        using var kms = Create();
        _fake.FailNext(0);

        var ex = await Should.ThrowAsync<KmsProtocolException>(() => kms.EncryptAsync("secret"u8.ToArray(), Context, default));
        ex.Message.ShouldContain("malformed JSON");
    }

    [Fact]
    public async Task The_access_token_is_fetched_once_and_reused()
    {
        using var kms = Create();
        (await kms.IsReadyAsync(default)).ShouldBeTrue();
        for (var i = 0; i < 3; i++)
        {
            var ciphertext = await kms.EncryptAsync("secret"u8.ToArray(), Context, default);
            await kms.DecryptAsync(ciphertext, Context, default);
        }

        _fake.TokenRequests.ShouldBe(1);
        _fake.KmsRequests.ShouldBe(6);
    }

    [Fact]
    public async Task A_key_the_token_server_rejects_is_not_ready_and_denied()
    {
        using var wrongKey = RSA.Create(2048);
        using var kms = Create(json: _fake.ServiceAccountJson(key: wrongKey));

        (await kms.IsReadyAsync(default)).ShouldBeFalse();
        var ex = await Should.ThrowAsync<KmsAccessDeniedException>(() => kms.EncryptAsync("secret"u8.ToArray(), Context, default));
        ex.Message.ShouldContain("invalid_grant");
        ex.Message.ShouldContain(_fake.ClientEmail);
        _fake.KmsRequests.ShouldBe(0);
    }

    [Fact]
    public async Task An_unreachable_kms_is_transient()
    {
        using var kms = new GoogleCloudKms(
            new GoogleCloudKmsOptions(_fake.KeyName, new Uri("http://127.0.0.1:1"), _fake.ServiceAccountJson(), _fake.TokenUrl, TimeSpan.FromSeconds(5), 0),
            TimeProvider.System, NullLogger<GoogleCloudKms>.Instance);

        await Should.ThrowAsync<TransientException>(() => kms.EncryptAsync("secret"u8.ToArray(), Context, default));
    }

    [Theory]
    [InlineData("projects/p/locations/l/keyRings/r")]
    [InlineData("projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1")]
    [InlineData("keys/k")]
    public void Options_reject_a_name_that_is_not_a_crypto_key(string keyName) =>
        Should.Throw<ArgumentException>(() => Create(keyName: keyName)).ParamName.ShouldBe("KeyName");

    [Fact]
    public void Options_reject_a_relative_or_non_http_base_url() =>
        Should.Throw<ArgumentException>(() => new GoogleCloudKmsOptions(_fake.KeyName, new Uri("ftp://example.com"), "{}", _fake.TokenUrl, TimeSpan.FromSeconds(1)).Validate())
            .ParamName.ShouldBe("BaseUrl");

    [Fact]
    public void Credentials_other_than_a_service_account_are_refused_without_quoting_the_key()
    {
        var external = _fake.ServiceAccountJson(type: "external_account");
        Should.Throw<FormatException>(() => Create(json: external)).Message.ShouldContain("service_account");

        var broken = _fake.ServiceAccountJson().Replace("\"type\"", "\"type", StringComparison.Ordinal);
        var ex = Should.Throw<FormatException>(() => Create(json: broken));
        ex.Message.ShouldNotContain("PRIVATE KEY");
    }
}
