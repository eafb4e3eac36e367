using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.IntegrationTests.Support;
using Convergence.Processors.Integrations;
using Convergence.Processors.ProviderApis;
using Microsoft.Extensions.Logging.Abstractions;
using static Convergence.IntegrationTests.Support.FakeUsageApis;

namespace Convergence.IntegrationTests.Usage;

/// <summary>
/// <see cref="ProviderApiClient"/> on its own against <see cref="FakeUsageApis"/>: retry bounds and waits on a manual
/// clock, terminal answers, and envelopes that would loop or lie.
/// </summary>
public sealed class ProviderApiClientTests : IAsyncLifetime
{
    private static readonly KeyValuePair<string, string>[] Query = [new("start_time", "1763596800"), new("bucket_width", "1d")];

    private readonly ManualTimeProvider _clock = new();
    private FakeUsageApis _fake = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _fake = await StartAsync();
        _http = new HttpClient();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _fake.DisposeAsync();
    }

    [Fact]
    public async Task GetAllBuckets_TwoPages_ReturnsEveryBucketInOrder()
    {
        var buckets = await DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.OpenAi, "organization/usage/completions"), CancellationToken.None));

        buckets.Select(b => b.GetProperty("start_time").GetInt64()).ShouldBe([1763596800L, 1763683200L]);
        _fake.RequestsTo(OpenAiCompletions).Select(r => r.Page).ShouldBe([1, 2]);
    }

    [Fact]
    public async Task GetAllBuckets_RetryAfterAboveTheCap_WaitsTheCapOnly()
    {
        _fake.Fail(OpenAiCompletions, 1, "429");
        var before = _clock.GetUtcNow();

        await DriveAsync(Client(ProviderApiOptions.Default with { MaxDelay = TimeSpan.FromSeconds(5) }).GetAllBucketsAsync(Call(IntegrationProvider.OpenAi, "organization/usage/completions"), CancellationToken.None));

        (_clock.GetUtcNow() - before).ShouldBe(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task GetAllBuckets_429OnEveryAttempt_ThrowsTransientWithRetryAfterNamingEndpointAndPage()
    {
        _fake.Fail(AnthropicMessages, 2, "429", "429", "429", "429");
        var before = _clock.GetUtcNow();

        var ex = await Should.ThrowAsync<ProviderUnavailableException>(DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.Anthropic, "v1/organizations/usage_report/messages"), CancellationToken.None)));

        TransientException.IsTransient(ex).ShouldBeTrue();
        ex.RetryAfter.ShouldBe(TimeSpan.FromSeconds(RetryAfterSeconds));
        ex.Message.ShouldContain("anthropic GET v1/organizations/usage_report/messages (page 2): 429");
        ex.Message.ShouldContain("rate limit");
        _fake.RequestsTo(AnthropicMessages).Select(r => r.Page).ShouldBe([1, 2, 2, 2, 2], "4 attempts, page 1 once");
        (_clock.GetUtcNow() - before).ShouldBe(TimeSpan.FromSeconds(3 * RetryAfterSeconds), "each wait is the Retry-After (above the backoff of 1, 2, 4 s)");
    }

    [Fact]
    public async Task GetAllBuckets_Forbidden_ThrowsRejectedAtOnceWithTheProvidersMessage()
    {
        _fake.Fail(OpenAiCosts, 1, "403");

        var ex = await Should.ThrowAsync<ProviderCredentialRejectedException>(DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.OpenAi, "organization/costs"), CancellationToken.None)));

        ex.HttpStatus.ShouldBe(403);
        ex.Message.ShouldBe("openai refused the credential (403) on organization/costs: You have insufficient permissions for this operation. Missing scopes: api.usage.read.");
        TransientException.IsTransient(ex).ShouldBeFalse();
        _fake.RequestsTo(OpenAiCosts).Count.ShouldBe(1);
    }

    [Fact]
    public async Task GetAllBuckets_HasMoreWithoutNextPage_FailsRatherThanStopSilently()
    {
        _fake.Replace(OpenAiCosts, 2, """{"object":"page","data":[],"has_more":true,"next_page":null}""");

        var ex = await Should.ThrowAsync<ProviderResponseException>(DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.OpenAi, "organization/costs"), CancellationToken.None)));

        ex.Message.ShouldBe("openai GET organization/costs (page 2): has_more is true but next_page is empty.");
    }

    [Fact]
    public async Task GetAllBuckets_CursorThatRepeats_FailsInsteadOfLooping()
    {
        _fake.Replace(OpenAiCompletions, 2, """{"object":"page","data":[],"has_more":true,"next_page":"page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="}""");

        var ex = await Should.ThrowAsync<ProviderResponseException>(DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.OpenAi, "organization/usage/completions"), CancellationToken.None)));

        ex.Message.ShouldContain("next_page repeats an earlier cursor");
        _fake.RequestsTo(OpenAiCompletions).Count.ShouldBe(2);
    }

    [Fact]
    public async Task GetAllBuckets_NoDataArray_IsRetriedOnceThenFails()
    {
        _fake.Replace(AnthropicCostReport, 1, """{"type":"error","error":{"type":"api_error","message":"oops"}}""");

        var ex = await Should.ThrowAsync<ProviderResponseException>(DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.Anthropic, "v1/organizations/cost_report"), CancellationToken.None)));

        ex.Message.ShouldStartWith("anthropic GET v1/organizations/cost_report (page 1): the body has no data array.");
        _fake.RequestsTo(AnthropicCostReport).Count.ShouldBe(2);
    }

    [Fact]
    public async Task GetAllBuckets_UnknownCursor_Is400AndNotRetried()
    {
        _fake.Replace(OpenAiCompletions, 1, """{"object":"page","data":[],"has_more":true,"next_page":"page_unknown"}""");

        var ex = await Should.ThrowAsync<ProviderResponseException>(DriveAsync(Client().GetAllBucketsAsync(Call(IntegrationProvider.OpenAi, "organization/usage/completions"), CancellationToken.None)));

        ex.Message.ShouldContain("(page 2): 400: Invalid page cursor 'page_unknown'.");
        _fake.RequestsTo(OpenAiCompletions).Count.ShouldBe(2);
    }

    private ProviderApiClient Client(ProviderApiOptions? options = null) => new(
        _http,
        new ProviderEndpoints(_fake.OpenAiBase, _fake.AnthropicBase, new Uri("http://127.0.0.1:9/"), TimeSpan.FromSeconds(5)),
        _clock,
        NullLogger<ProviderApiClient>.Instance,
        options);

    private static ProviderApiCall Call(IntegrationProvider provider, string path) =>
        new(provider, path, Query, provider == IntegrationProvider.OpenAi ? FakeProviders.OpenAiAdminKey : FakeProviders.AnthropicAdminKey);

    /// <summary>Runs <paramref name="work"/>, moving the manual clock to each backoff timer as soon as it is set.</summary>
    private async Task<T> DriveAsync<T>(Task<T> work)
    {
        var patience = Task.Delay(PipelineHarness.Patience);
        while (!work.IsCompleted)
        {
            var changed = _clock.WhenTimersChange();
            if (_clock.NextDueWithin(TimeSpan.FromMinutes(5)) is { } due)
            {
                _clock.AdvanceTo(due);
                continue;
            }

            if (await Task.WhenAny(work, changed, patience) == patience)
            {
                throw new TimeoutException("The fetch did not finish in time.");
            }
        }

        return await work;
    }
}
