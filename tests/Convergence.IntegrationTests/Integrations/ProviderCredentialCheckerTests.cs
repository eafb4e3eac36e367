using Convergence.Core.Integrations;
using Convergence.IntegrationTests.Support;
using Convergence.Processors.Integrations;

namespace Convergence.IntegrationTests.Integrations;

/// <summary>Live credential checks against a loopback fake of the providers' documented answers.</summary>
public sealed class ProviderCredentialCheckerTests : IAsyncLifetime
{
    private FakeProviders _fake = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _fake = await FakeProviders.StartAsync();
        _http = new HttpClient();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _fake.DisposeAsync();
    }

    private ProviderCredentialChecker Checker(TimeSpan? timeout = null) =>
        new(_http, new ProviderEndpoints(_fake.OpenAiBase, _fake.AnthropicBase, _fake.DeepSeekBase, timeout ?? TimeSpan.FromSeconds(10)));

    public static TheoryData<string, string, string> ValidKeys() => new()
    {
        { "openai", FakeProviders.OpenAiKey, "GET /openai/v1/models" },
        { "openai", FakeProviders.OpenAiAdminKey, "GET /openai/v1/organization/projects?limit=1" },
        { "anthropic", FakeProviders.AnthropicKey, "GET /anthropic/v1/models?limit=1" },
        { "anthropic", FakeProviders.AnthropicAdminKey, "GET /anthropic/v1/organizations/me" },
        { "deepseek", FakeProviders.DeepSeekKey, "GET /deepseek/user/balance" },
    };

    [Theory]
    [MemberData(nameof(ValidKeys))]
    public async Task Check_GoodKey_IsValidWithTheCheapCall(string provider, string key, string expectedCall)
    {
        IntegrationProvider.TryFromRoute(provider, out var p).ShouldBeTrue();

        var check = await Checker().CheckAsync(p, key, CancellationToken.None);

        check.Status.ShouldBe(CredentialStatus.Valid);
        _fake.Requests.ShouldBe([expectedCall]);
    }

    [Theory]
    [InlineData("openai", "sk-proj-wrong1111111111111111", "Incorrect API key provided")]
    [InlineData("openai", "sk-admin-wrong111111111111111", "Incorrect API key provided")]
    [InlineData("anthropic", "sk-ant-api03-wrong111111111", "invalid x-api-key")]
    [InlineData("deepseek", "sk-deepseekwrong111111111111", "Authentication Fails")]
    public async Task Check_BadKey_IsInvalidWithTheProvidersMessageButNotTheKey(string provider, string key, string message)
    {
        IntegrationProvider.TryFromRoute(provider, out var p).ShouldBeTrue();

        var check = await Checker().CheckAsync(p, key, CancellationToken.None);

        check.Status.ShouldBe(CredentialStatus.Invalid);
        check.HttpStatus.ShouldBe(401);
        check.Reason.ShouldNotBeNull().ShouldContain(message);
        check.Reason.ShouldNotContain(key);
        check.Reason.ShouldNotContain(key[^4..], Case.Sensitive, "not even the masked tail the provider echoes");
    }

    [Fact]
    public async Task Check_ProjectKeyOnAdminCall_IsInvalidWith403()
    {
        // A non-admin key used where the ingester needs admin scope: the provider answers 403.
        var check = await Checker().CheckAsync(IntegrationProvider.OpenAi, "sk-admin-" + FakeProviders.OpenAiKey, CancellationToken.None);

        check.Status.ShouldBe(CredentialStatus.Invalid);
    }

    [Theory]
    [InlineData("429", 429)]
    [InlineData("500", 500)]
    [InlineData("malformed", 503)]
    public async Task Check_ProviderTrouble_IsPendingWithTheReason(string mode, int status)
    {
        _fake.Mode = mode;

        var check = await Checker().CheckAsync(IntegrationProvider.OpenAi, FakeProviders.OpenAiKey, CancellationToken.None);

        check.Status.ShouldBe(CredentialStatus.Pending);
        check.HttpStatus.ShouldBe(status);
        check.Reason.ShouldNotBeNull().ShouldContain("kept and checked again later");
        check.Reason.ShouldNotContain(FakeProviders.OpenAiKey);
    }

    [Fact]
    public async Task Check_ProviderHangsPastTheTimeout_IsPending()
    {
        _fake.Mode = "hang";

        var check = await Checker(TimeSpan.FromMilliseconds(300)).CheckAsync(IntegrationProvider.DeepSeek, FakeProviders.DeepSeekKey, CancellationToken.None);

        check.Status.ShouldBe(CredentialStatus.Pending);
        check.Reason.ShouldNotBeNull().ShouldContain("did not answer");
    }

    [Fact]
    public async Task Check_ProviderUnreachable_IsPending()
    {
        var closed = new ProviderCredentialChecker(_http, new ProviderEndpoints(new Uri("http://127.0.0.1:9/v1"), _fake.AnthropicBase, _fake.DeepSeekBase, TimeSpan.FromSeconds(5)));

        var check = await closed.CheckAsync(IntegrationProvider.OpenAi, FakeProviders.OpenAiKey, CancellationToken.None);

        check.Status.ShouldBe(CredentialStatus.Pending);
    }
}
