using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Convergence.Core.Errors;
using Convergence.Core.Kms;
using Google.Apis.Auth.OAuth2;
using Google.Apis.Auth.OAuth2.Responses;
using Google.Apis.Http;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Convergence.Kms.Google;

/// <summary>
/// Google Cloud KMS over its REST API: each secret is encrypted by the configured CryptoKey with the
/// <see cref="KmsContext"/> as additional authenticated data.
/// </summary>
/// <remarks>
/// <para>Ciphertexts are <c>gkms1.{base64url of the Cloud KMS ciphertext}</c>; Cloud KMS records the key version
/// inside its ciphertext, so rotation needs nothing here.</para>
/// <para>The access token comes from a service-account key through Google.Apis.Auth, which caches it until shortly
/// before expiry. 429, 5xx, timeouts and dropped connections are retried a few times, then surface as
/// <see cref="TransientException"/>.</para>
/// </remarks>
internal sealed partial class GoogleCloudKms : IKeyManagementService, IDisposable
{
    internal const string FormatTag = "gkms1";
    private static readonly TimeSpan MaxRetryAfter = TimeSpan.FromSeconds(10);

    private readonly GoogleCloudKmsOptions _options;
    private readonly ServiceAccountCredential _credential;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger<GoogleCloudKms> _logger;
    private readonly ResiliencePipeline _retry;
    private readonly Uri _encryptUrl;
    private readonly Uri _decryptUrl;

    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="FormatException">The service-account JSON is not a usable service-account key.</exception>
    public GoogleCloudKms(GoogleCloudKmsOptions options, TimeProvider time, ILogger<GoogleCloudKms> logger, HttpMessageHandler? handler = null)
    {
        options.Validate();
        _options = options;
        _time = time;
        _logger = logger;

        var key = ServiceAccountKey.Parse(options.ServiceAccountJson);
        // Retries are ours (below), so a refused token does not hide behind the library's back-off.
        _credential = key.CreateCredential(options.TokenUrl, GoogleCloudKmsOptions.Scope, time);

        _http = handler is null
            ? new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = Timeout.InfiniteTimeSpan; // Each attempt has its own deadline.

        var baseUrl = options.BaseUrl.AbsoluteUri.TrimEnd('/');
        _encryptUrl = new Uri($"{baseUrl}/v1/{options.KeyName}:encrypt");
        _decryptUrl = new Uri($"{baseUrl}/v1/{options.KeyName}:decrypt");

        _retry = options.MaxRetries == 0
            ? ResiliencePipeline.Empty
            : new ResiliencePipelineBuilder { TimeProvider = time }
                .AddRetry(new RetryStrategyOptions
                {
                    ShouldHandle = new PredicateBuilder().Handle<TransientException>(),
                    MaxRetryAttempts = options.MaxRetries,
                    BackoffType = DelayBackoffType.Exponential,
                    Delay = TimeSpan.FromMilliseconds(100),
                    UseJitter = true,
                    DelayGenerator = args => ValueTask.FromResult(
                        args.Outcome.Exception is TransientException { RetryAfter: { } after } ? (TimeSpan?)Min(after, MaxRetryAfter) : null),
                    OnRetry = args =>
                    {
                        LogRetry(_logger, _options.KeyName, args.AttemptNumber + 1, args.RetryDelay, args.Outcome.Exception?.Message);
                        return ValueTask.CompletedTask;
                    },
                })
                .Build();
    }

    public string Kind => "gcp";

    /// <summary>The CryptoKey this instance uses.</summary>
    public string KeyName => _options.KeyName;

    public async Task<string> EncryptAsync(ReadOnlyMemory<byte> plaintext, KmsContext context, CancellationToken cancellationToken)
    {
        var request = new EncryptRequest(Convert.ToBase64String(plaintext.Span), Convert.ToBase64String(context.ToAssociatedData()));
        var body = JsonSerializer.SerializeToUtf8Bytes(request, GoogleKmsJson.Default.EncryptRequest);
        var response = await SendAsync(_encryptUrl, "encrypt", body, GoogleKmsJson.Default.EncryptResponse, cancellationToken).ConfigureAwait(false);
        var ciphertext = DecodeField(response.Ciphertext, "ciphertext", "encrypt");
        return $"{FormatTag}.{System.Buffers.Text.Base64Url.EncodeToString(ciphertext)}";
    }

    public async Task<byte[]> DecryptAsync(string ciphertext, KmsContext context, CancellationToken cancellationToken)
    {
        var raw = Split(ciphertext);
        var request = new DecryptRequest(Convert.ToBase64String(raw), Convert.ToBase64String(context.ToAssociatedData()));
        var body = JsonSerializer.SerializeToUtf8Bytes(request, GoogleKmsJson.Default.DecryptRequest);
        var response = await SendAsync(_decryptUrl, "decrypt", body, GoogleKmsJson.Default.DecryptResponse, cancellationToken).ConfigureAwait(false);
        // Proto3 JSON omits empty bytes fields: an empty secret decrypts to no "plaintext" at all.
        return response.Plaintext is null ? [] : DecodeField(response.Plaintext, "plaintext", "decrypt");
    }

    /// <summary>Ready when an access token can be obtained (cached or fresh).</summary>
    public async Task<bool> IsReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            await GetTokenAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogNotReady(_logger, ex, _options.KeyName, _credential.Id);
            return false;
        }
    }

    public void Dispose() => _http.Dispose();

    private async Task<T> SendAsync<T>(Uri url, string operation, byte[] body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
        where T : class =>
        await _retry.ExecuteAsync(
            async ct => await SendOnceAsync(url, operation, body, typeInfo, ct).ConfigureAwait(false),
            cancellationToken).ConfigureAwait(false);

    private async Task<T> SendOnceAsync<T>(Uri url, string operation, byte[] body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
        where T : class
    {
        var token = await GetTokenAsync(cancellationToken).ConfigureAwait(false);
        using var deadline = new CancellationTokenSource(_options.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, linked.Token).ConfigureAwait(false);
            var content = await response.Content.ReadAsByteArrayAsync(linked.Token).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return Parse(content, typeInfo, operation, (int)response.StatusCode);
            }

            throw Failure(operation, response, content);
        }
        catch (OperationCanceledException ex) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TransientException($"Cloud KMS {operation} on {_options.KeyName} timed out after {_options.Timeout.TotalSeconds:0.#} s.", new TimeoutException(ex.Message, ex));
        }
        catch (HttpRequestException ex)
        {
            throw new TransientException($"Cloud KMS {operation} on {_options.KeyName} failed to connect: {ex.HttpRequestError}.", ex);
        }
    }

    private async Task<string> GetTokenAsync(CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(_options.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await _credential.GetAccessTokenForRequestAsync(cancellationToken: linked.Token).ConfigureAwait(false);
        }
        catch (TokenResponseException ex)
        {
            var status = (int?)ex.StatusCode;
            var message = $"The token server refused service account {_credential.Id} for Cloud KMS key {_options.KeyName} (HTTP {status?.ToString(CultureInfo.InvariantCulture) ?? "?"}, {ex.Error?.Error ?? "no error code"}).";
            if (status is 429 or >= 500)
            {
                throw new TransientException(message, ex);
            }

            throw new KmsAccessDeniedException(message, status, ex);
        }
        catch (OperationCanceledException ex) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TransientException($"The token server did not answer within {_options.Timeout.TotalSeconds:0.#} s (Cloud KMS key {_options.KeyName}).", new TimeoutException(ex.Message, ex));
        }
        catch (HttpRequestException ex)
        {
            throw new TransientException($"The token server for Cloud KMS key {_options.KeyName} could not be reached: {ex.HttpRequestError}.", ex);
        }
    }

    private Exception Failure(string operation, HttpResponseMessage response, byte[] content)
    {
        var status = (int)response.StatusCode;
        var googleStatus = ErrorStatus(content);
        var what = $"Cloud KMS {operation} on {_options.KeyName} failed: HTTP {status}{(googleStatus is null ? "" : " " + googleStatus)}";
        switch (response.StatusCode)
        {
            case HttpStatusCode.BadRequest when operation == "decrypt":
                return new KmsDecryptionException($"{what}: the ciphertext was tampered with, or belongs to another org, purpose or record.");
            case HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden:
                LogDenied(_logger, _options.KeyName, operation, status, googleStatus, _credential.Id);
                return new KmsAccessDeniedException($"{what}. Check that service account {_credential.Id} has roles/cloudkms.cryptoKeyEncrypterDecrypter on the key.", status);
            case HttpStatusCode.TooManyRequests:
            case >= HttpStatusCode.InternalServerError:
                return new TransientException($"{what}.", retryAfter: RetryAfter(response));
            default:
                return new KmsProtocolException($"{what}.", status);
        }
    }

    private TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta;
        }

        if (header?.Date is { } date)
        {
            var wait = date - _time.GetUtcNow();
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }

        return null;
    }

    private T Parse<T>(byte[] content, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo, string operation, int status)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(content, typeInfo)
                ?? throw new KmsProtocolException($"Cloud KMS {operation} on {_options.KeyName} answered HTTP {status} with a JSON null.", status);
        }
        catch (JsonException ex)
        {
            throw new KmsProtocolException($"Cloud KMS {operation} on {_options.KeyName} answered HTTP {status} with malformed JSON (line {ex.LineNumber + 1}).", status, ex);
        }
    }

    private byte[] DecodeField(string? value, string field, string operation)
    {
        if (value is null)
        {
            throw new KmsProtocolException($"Cloud KMS {operation} on {_options.KeyName} answered without \"{field}\".");
        }

        try
        {
            return Convert.FromBase64String(value);
        }
        catch (FormatException ex)
        {
            throw new KmsProtocolException($"Cloud KMS {operation} on {_options.KeyName} answered a \"{field}\" that is not base64.", inner: ex);
        }
    }

    private static byte[] Split(string ciphertext)
    {
        var dot = ciphertext.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0 || !ciphertext.AsSpan(0, dot).SequenceEqual(FormatTag) || dot == ciphertext.Length - 1)
        {
            throw new KmsDecryptionException("The ciphertext is not in the Cloud KMS (gkms1) format.");
        }

        try
        {
            return System.Buffers.Text.Base64Url.DecodeFromChars(ciphertext.AsSpan(dot + 1));
        }
        catch (FormatException ex)
        {
            throw new KmsDecryptionException("The ciphertext is not valid base64url.", ex);
        }
    }

    /// <summary>Google's error status (such as <c>PERMISSION_DENIED</c>) from <c>{"error":{"status":…}}</c>, if readable.</summary>
    private static string? ErrorStatus(byte[] content)
    {
        try
        {
            var error = JsonSerializer.Deserialize(content, GoogleKmsJson.Default.ErrorEnvelope)?.Error?.Status;
            // Only an enum-like word: never echo arbitrary response text into messages.
            return error is { Length: > 0 and <= 64 } && error.All(c => char.IsAsciiLetterUpper(c) || c == '_') ? error : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "Cloud KMS call on {KeyName} failed transiently; retry {Attempt} in {Delay}: {Reason}")]
    private static partial void LogRetry(ILogger logger, string keyName, int attempt, TimeSpan delay, string? reason);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Error, Message = "Cloud KMS refused {Operation} on {KeyName}: HTTP {Status} {GoogleStatus} for service account {ClientEmail}")]
    private static partial void LogDenied(ILogger logger, string keyName, string operation, int status, string? googleStatus, string clientEmail);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "Cloud KMS key {KeyName} is not ready: no access token for service account {ClientEmail}")]
    private static partial void LogNotReady(ILogger logger, Exception exception, string keyName, string clientEmail);

    internal sealed record EncryptRequest(
        [property: JsonPropertyName("plaintext")] string Plaintext,
        [property: JsonPropertyName("additionalAuthenticatedData")] string AdditionalAuthenticatedData);

    internal sealed record EncryptResponse(
        [property: JsonPropertyName("name")] string? Name,
        [property: JsonPropertyName("ciphertext")] string? Ciphertext);

    internal sealed record DecryptRequest(
        [property: JsonPropertyName("ciphertext")] string Ciphertext,
        [property: JsonPropertyName("additionalAuthenticatedData")] string AdditionalAuthenticatedData);

    internal sealed record DecryptResponse([property: JsonPropertyName("plaintext")] string? Plaintext);

    internal sealed record ErrorEnvelope([property: JsonPropertyName("error")] ErrorBody? Error);

    internal sealed record ErrorBody(
        [property: JsonPropertyName("code")] int Code,
        [property: JsonPropertyName("status")] string? Status);
}

[JsonSerializable(typeof(GoogleCloudKms.EncryptRequest))]
[JsonSerializable(typeof(GoogleCloudKms.EncryptResponse))]
[JsonSerializable(typeof(GoogleCloudKms.DecryptRequest))]
[JsonSerializable(typeof(GoogleCloudKms.DecryptResponse))]
[JsonSerializable(typeof(GoogleCloudKms.ErrorEnvelope))]
internal sealed partial class GoogleKmsJson : JsonSerializerContext;
