using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Polly;
using Polly.Retry;

namespace Convergence.Processors.ProviderApis;

/// <summary>
/// The retry conventions every provider HTTP client here follows, in one place: one request is retried on its own on
/// <see cref="ProviderUnavailableException"/> (429 waiting the provider's <c>Retry-After</c>, capped; 5xx; timeouts;
/// dropped connections) with exponential backoff on the injected <see cref="TimeProvider"/>, and once on a malformed
/// body (<see cref="ProviderMalformedResponseException"/>), which fails with a <see cref="ProviderResponseException"/>
/// when it comes back malformed. Anything else (401/403, other 4xx) is not retried.
/// </summary>
internal sealed class ProviderRequestRetry(ProviderApiOptions options, TimeProvider time)
{
    public ProviderApiOptions Options { get; } = options.Validate();

    /// <summary>
    /// Runs <paramref name="send"/> until it succeeds, fails for good or the attempts run out (the last
    /// <see cref="ProviderUnavailableException"/> is rethrown: transient, so the step may retry later).
    /// <paramref name="onRetry"/> gets the next attempt's number (2, 3, …), the wait and the reason.
    /// </summary>
    public async Task<T> ExecuteAsync<T>(Func<CancellationToken, Task<T>> send, Action<int, TimeSpan, string> onRetry, CancellationToken cancellationToken)
    {
        // Built per request: the count of malformed bodies belongs to this request's attempts only.
        var malformed = 0;
        var retry = new ResiliencePipelineBuilder<T> { TimeProvider = time };
        if (Options.MaxAttempts > 1)
        {
            retry.AddRetry(new RetryStrategyOptions<T>
            {
                MaxRetryAttempts = Options.MaxAttempts - 1,
                ShouldHandle = args => ValueTask.FromResult(
                    !cancellationToken.IsCancellationRequested
                    && args.Outcome.Exception switch
                    {
                        ProviderUnavailableException => true,
                        ProviderMalformedResponseException => ++malformed == 1,
                        _ => false,
                    }),
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(Delay(args.AttemptNumber, (args.Outcome.Exception as ProviderUnavailableException)?.RetryAfter)),
                OnRetry = args =>
                {
                    onRetry(args.AttemptNumber + 2, args.RetryDelay, args.Outcome.Exception?.Message ?? string.Empty);
                    return ValueTask.CompletedTask;
                },
            });
        }

        try
        {
            return await retry.Build().ExecuteAsync(async token => await send(token), cancellationToken);
        }
        catch (ProviderMalformedResponseException ex)
        {
            throw new ProviderResponseException($"{ex.Message} It was still malformed on a retry; nothing was written.", ex);
        }
    }

    /// <summary><c>BaseDelay × 2^retry</c>, at least the provider's Retry-After, never above <c>MaxDelay</c>.</summary>
    public TimeSpan Delay(int retry, TimeSpan? retryAfter)
    {
        var backoff = Options.BaseDelay * Math.Pow(2, Math.Min(retry, 16));
        var wait = retryAfter is { } after && after > backoff ? after : backoff;
        return wait > Options.MaxDelay ? Options.MaxDelay : wait;
    }

    /// <summary>Retry-After as seconds or as an HTTP date (measured from the response's Date, else our clock).</summary>
    public TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        if (response.Headers.RetryAfter is not RetryConditionHeaderValue header)
        {
            return null;
        }

        if (header.Delta is { } delta)
        {
            return delta;
        }

        if (header.Date is not { } date)
        {
            return null;
        }

        var wait = date - (response.Headers.Date ?? time.GetUtcNow());
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }

    /// <summary>
    /// Sends one request and reads its answer: status, <c>Retry-After</c> and body text. No answer before
    /// <paramref name="timeoutToken"/> fires (while <paramref name="cancellationToken"/> has not), a failed connection and
    /// a cut-off or oversized body become a <see cref="ProviderUnavailableException"/> naming <paramref name="description"/>,
    /// so <see cref="ExecuteAsync{T}"/> retries them.
    /// </summary>
    public async Task<(HttpStatusCode Status, TimeSpan? RetryAfter, string Body)> ExchangeAsync(
        HttpClient http, HttpRequestMessage request, string description, TimeSpan timeout, CancellationToken timeoutToken, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeoutToken);
            return (response.StatusCode, RetryAfter(response), await ReadBodyAsync(response, timeoutToken));
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ProviderUnavailableException($"{description}: no answer within {timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s.", ex);
        }
        catch (HttpRequestException ex)
        {
            throw new ProviderUnavailableException($"{description}: the connection failed ({ex.HttpRequestError}).", ex);
        }
        catch (IOException ex)
        {
            throw new ProviderUnavailableException($"{description}: the response was cut off.", ex);
        }
    }

    /// <summary>A response body as JSON; text that is not JSON is a <see cref="ProviderMalformedResponseException"/> (retried once).</summary>
    public static JsonDocument ParseJson(string body, string description)
    {
        try
        {
            return JsonDocument.Parse(body);
        }
        catch (JsonException ex)
        {
            throw new ProviderMalformedResponseException($"{description}: the body is not valid JSON ({ex.Message})", ex);
        }
    }

    /// <summary>The body as UTF-8 text, at most <see cref="ProviderApiOptions.MaxBodyBytes"/> (an <see cref="IOException"/> past it).</summary>
    public async Task<string> ReadBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > Options.MaxBodyBytes)
        {
            throw new IOException($"The body is larger than {Options.MaxBodyBytes} bytes.");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > Options.MaxBodyBytes)
            {
                throw new IOException($"The body is larger than {Options.MaxBodyBytes} bytes.");
            }

            buffer.Write(chunk, 0, read);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
