using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A loopback stand-in for Google's OAuth token endpoint and the Cloud KMS encrypt/decrypt REST methods.
/// </summary>
/// <remarks>
/// <para><c>POST /token</c> implements the JWT-bearer grant: it checks the grant type, the RS256 signature against
/// the service account's public key, the issuer, audience, scope and expiry, and issues a random bearer token.</para>
/// <para><c>POST /v1/{key}:encrypt|decrypt</c> require an issued token, do real AES-256-GCM with a per-fake key and
/// the request's additionalAuthenticatedData, and answer Google-shaped errors: 400 INVALID_ARGUMENT when the
/// ciphertext fails authentication, 403 PERMISSION_DENIED for any other key name, 401 UNAUTHENTICATED without a
/// valid token, and 429/500 or malformed JSON on demand (<see cref="FailNext"/>).</para>
/// </remarks>
public sealed class FakeGoogleKms : IAsyncDisposable
{
    public const string KmsScope = "https://www.googleapis.com/auth/cloudkms";

    /// <summary>The scope integration checks of tenants' service accounts ask for.</summary>
    public const string ReadOnlyScope = "https://www.googleapis.com/auth/cloud-platform.read-only";
    public const string JwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer";

    private readonly WebApplication _app;
    private readonly RSA _serviceAccountKey = RSA.Create(2048);
    private readonly byte[] _aesKey = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<string, byte> _tokens = new();
    private readonly ConcurrentQueue<Failure> _failures = new();
    private readonly ConcurrentQueue<int> _tokenFailures = new();
    private int _tokenRequests;
    private int _kmsRequests;

    private FakeGoogleKms(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public string KeyName { get; } = "projects/test-project/locations/europe-west1/keyRings/convergence/cryptoKeys/secrets";

    public string ClientEmail { get; } = "convergence@test-project.iam.gserviceaccount.com";

    public Uri BaseUrl { get; }

    public Uri TokenUrl => new(BaseUrl, "/token");

    /// <summary>Token requests answered so far (successful or not).</summary>
    public int TokenRequests => Volatile.Read(ref _tokenRequests);

    /// <summary>Encrypt/decrypt requests received so far (successful or not).</summary>
    public int KmsRequests => Volatile.Read(ref _kmsRequests);

    /// <summary>The fake's clock for JWT expiry checks; tests whose service runs on a fake clock point it there.</summary>
    public Func<DateTimeOffset> Now { get; set; } = () => DateTimeOffset.UtcNow;

    /// <summary>Every access token issued, so tests can check none leaks into messages.</summary>
    public IReadOnlyCollection<string> IssuedTokens => [.. _tokens.Keys];

    public static async Task<FakeGoogleKms> StartAsync()
    {
        FakeGoogleKms? fake = null;
        var (app, baseUrl) = await LoopbackHost.StartAsync(app =>
        {
            app.MapPost("/token", async http => await (await fake!.TokenAsync(http)).ExecuteAsync(http));
            app.MapPost("/v1/{**resource}", async http =>
                await (await fake!.KmsAsync(http, http.Request.RouteValues["resource"] as string ?? "")).ExecuteAsync(http));
        });
        fake = new FakeGoogleKms(app, baseUrl);
        return fake;
    }

    /// <summary>A service-account key file for this fake's account, signed by the key the fake verifies.</summary>
    public string ServiceAccountJson(string type = "service_account", RSA? key = null) => new JsonObject
    {
        ["type"] = type,
        ["project_id"] = "test-project",
        ["private_key_id"] = "0123456789abcdef",
        ["private_key"] = (key ?? _serviceAccountKey).ExportPkcs8PrivateKeyPem(),
        ["client_email"] = ClientEmail,
        ["client_id"] = "123456789",
        ["token_uri"] = TokenUrl.AbsoluteUri,
    }.ToJsonString();

    /// <summary>Answers the next <paramref name="count"/> KMS requests with <paramref name="status"/> (0 = HTTP 200 with malformed JSON).</summary>
    public void FailNext(int status, int count = 1, int? retryAfterSeconds = null)
    {
        for (var i = 0; i < count; i++)
        {
            _failures.Enqueue(new Failure(status, retryAfterSeconds));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _serviceAccountKey.Dispose();
    }

    /// <summary>Answers the next <paramref name="count"/> token requests with <paramref name="status"/> (Google's OAuth error body).</summary>
    public void FailNextToken(int status, int count = 1)
    {
        for (var i = 0; i < count; i++)
        {
            _tokenFailures.Enqueue(status);
        }
    }

    private async Task<IResult> TokenAsync(HttpContext http)
    {
        Interlocked.Increment(ref _tokenRequests);
        if (_tokenFailures.TryDequeue(out var failed))
        {
            return Results.Json(new { error = failed == 429 ? "rate_limit_exceeded" : "internal_failure", error_description = "Try again later." }, statusCode: failed);
        }

        if (!http.Request.HasFormContentType)
        {
            return TokenError("invalid_request", "Expected application/x-www-form-urlencoded.");
        }

        var form = await http.Request.ReadFormAsync();
        if (form["grant_type"] != JwtBearerGrant)
        {
            return TokenError("unsupported_grant_type", "Invalid grant_type.");
        }

        if (VerifyAssertion(form["assertion"].ToString()) is { } problem)
        {
            return TokenError("invalid_grant", problem);
        }

        var token = "ya29.fake-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        _tokens[token] = 0;
        return Results.Json(new { access_token = token, expires_in = 3599, token_type = "Bearer" });
    }

    private string? VerifyAssertion(string assertion)
    {
        var parts = assertion.Split('.');
        if (parts.Length != 3)
        {
            return "The assertion is not a JWT.";
        }

        try
        {
            using var header = JsonDocument.Parse(Base64UrlDecode(parts[0]));
            if (header.RootElement.GetProperty("alg").GetString() != "RS256")
            {
                return "The assertion must be signed with RS256.";
            }

            var signed = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
            if (!_serviceAccountKey.VerifyData(signed, Base64UrlDecode(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1))
            {
                return "Invalid JWT Signature.";
            }

            using var payload = JsonDocument.Parse(Base64UrlDecode(parts[1]));
            var claims = payload.RootElement;
            var now = Now().ToUnixTimeSeconds();
            if (claims.GetProperty("iss").GetString() != ClientEmail)
            {
                return "Invalid issuer.";
            }

            // Google.Apis.Auth addresses the assertion to Google's token endpoint whatever URL it posts to.
            var audience = claims.GetProperty("aud").GetString();
            if (audience != "https://oauth2.googleapis.com/token" && audience != TokenUrl.AbsoluteUri)
            {
                return "Invalid audience.";
            }

            var scopes = (claims.GetProperty("scope").GetString() ?? "").Split(' ');
            if (!scopes.Contains(KmsScope) && !scopes.Contains(ReadOnlyScope))
            {
                return "Missing the cloudkms or cloud-platform.read-only scope.";
            }

            var iat = claims.GetProperty("iat").GetInt64();
            var exp = claims.GetProperty("exp").GetInt64();
            if (exp <= now || iat > now + 60 || exp - iat > 3600)
            {
                return "Invalid JWT: token must be a short-lived token and in a reasonable timeframe.";
            }

            return null;
        }
        catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            return "The assertion is malformed.";
        }
    }

    private async Task<IResult> KmsAsync(HttpContext http, string resource)
    {
        Interlocked.Increment(ref _kmsRequests);
        var auth = http.Request.Headers.Authorization.ToString();
        if (!auth.StartsWith("Bearer ", StringComparison.Ordinal) || !_tokens.ContainsKey(auth["Bearer ".Length..]))
        {
            return GoogleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
        }

        var colon = resource.LastIndexOf(':');
        var (name, method) = colon < 0 ? (resource, "") : (resource[..colon], resource[(colon + 1)..]);
        if (method is not ("encrypt" or "decrypt"))
        {
            return GoogleError(404, "NOT_FOUND", "Method not found.");
        }

        if (_failures.TryDequeue(out var failure))
        {
            if (failure.Status == 0)
            {
                return Results.Text("{\"ciphertext\": ", "application/json");
            }

            if (failure.RetryAfterSeconds is { } seconds)
            {
                http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return failure.Status == 429
                ? GoogleError(429, "RESOURCE_EXHAUSTED", "Quota exceeded.")
                : GoogleError(failure.Status, failure.Status == 503 ? "UNAVAILABLE" : "INTERNAL", "Internal error encountered.");
        }

        if (name != KeyName)
        {
            return GoogleError(403, "PERMISSION_DENIED", $"Permission 'cloudkms.cryptoKeyVersions.useTo{char.ToUpperInvariant(method[0])}{method[1..]}' denied on resource '{name}' (or it may not exist).");
        }

        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(http.Request.Body);
        }
        catch (JsonException)
        {
            return GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
        }

        byte[] aad;
        byte[] input;
        try
        {
            aad = Convert.FromBase64String(body?["additionalAuthenticatedData"]?.GetValue<string>() ?? "");
            input = Convert.FromBase64String(body?[method == "encrypt" ? "plaintext" : "ciphertext"]?.GetValue<string>() ?? "");
        }
        catch (FormatException)
        {
            return GoogleError(400, "INVALID_ARGUMENT", "Invalid value: not valid base64.");
        }

        return method == "encrypt" ? Encrypt(input, aad) : Decrypt(input, aad);
    }

    private IResult Encrypt(byte[] plaintext, byte[] aad)
    {
        var output = new byte[12 + plaintext.Length + 16];
        RandomNumberGenerator.Fill(output.AsSpan(0, 12));
        using var aes = new AesGcm(_aesKey, 16);
        aes.Encrypt(output.AsSpan(0, 12), plaintext, output.AsSpan(12, plaintext.Length), output.AsSpan(12 + plaintext.Length), aad);
        return Results.Json(new JsonObject
        {
            ["name"] = KeyName + "/cryptoKeyVersions/1",
            ["ciphertext"] = Convert.ToBase64String(output),
            ["verifiedPlaintextCrc32c"] = false,
            ["verifiedAdditionalAuthenticatedDataCrc32c"] = false,
            ["protectionLevel"] = "SOFTWARE",
        });
    }

    private IResult Decrypt(byte[] ciphertext, byte[] aad)
    {
        if (ciphertext.Length < 12 + 16)
        {
            return GoogleError(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.");
        }

        var length = ciphertext.Length - 28;
        var plaintext = new byte[length];
        try
        {
            using var aes = new AesGcm(_aesKey, 16);
            aes.Decrypt(ciphertext.AsSpan(0, 12), ciphertext.AsSpan(12, length), ciphertext.AsSpan(12 + length), plaintext, aad);
        }
        catch (AuthenticationTagMismatchException)
        {
            return GoogleError(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.");
        }

        var response = new JsonObject { ["usedPrimary"] = true, ["protectionLevel"] = "SOFTWARE" };
        if (plaintext.Length > 0)
        {
            // Proto3 JSON leaves out empty bytes fields.
            response["plaintext"] = Convert.ToBase64String(plaintext);
        }

        return Results.Json(response);
    }

    private static IResult GoogleError(int code, string status, string message) =>
        Results.Json(new { error = new { code, message, status } }, statusCode: code);

    private static IResult TokenError(string error, string description) =>
        Results.Json(new { error, error_description = description }, statusCode: 400);

    private static byte[] Base64UrlDecode(string text) => System.Buffers.Text.Base64Url.DecodeFromChars(text);

    private sealed record Failure(int Status, int? RetryAfterSeconds);
}
