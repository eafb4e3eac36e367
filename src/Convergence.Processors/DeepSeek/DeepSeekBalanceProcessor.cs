using System.Globalization;
using System.Net;
using System.Text.Json;
using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Processors.Integrations;

namespace Convergence.Processors.DeepSeek;

/// <summary>The provider refused the stored credential (401/403) during a data pipeline; the integration is now INVALID.</summary>
public sealed class CredentialRefusedException(string message) : ConvergenceException(message)
{
    public override string Title => "Provider refused the credential";
}

/// <summary>
/// <c>deepseek.balance</c>: snapshots the account balance (<c>GET /user/balance</c>: one entry per currency, amounts as
/// decimal strings, kept in their currency) into the step's destination, one row per day and currency
/// (<c>upsert</c> on <c>snapshot_date, currency</c>, so a rerun the same day replaces that day's snapshot). DeepSeek has
/// no usage API; the balance is what its API can tell about spend.
/// </summary>
/// <remarks>
/// Needs the decrypted credential in the run's secrets (<c>integrations.kms_decrypt</c> first, named by
/// <c>config.credential_step</c>). 401/403 mark the integration INVALID and fail the step; 429, 5xx and timeouts are
/// transient (the step's <c>retry</c> applies, honouring Retry-After); a malformed body fails the step naming it.
/// </remarks>
public sealed class DeepSeekBalanceProcessor(IHttpClientFactory clients, ProviderEndpoints endpoints, IControlPlaneStore store, TimeProvider time) : IProcessor
{
    /// <summary>The named HttpClient (registered without HttpClient's header-logging handlers).</summary>
    public const string HttpClientName = "deepseek-balance";

    public string PsType => "deepseek.balance";

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var stored = IntegrationParameters.StoredCredential(context);
        var key = context.Run.Secrets.RequireText(RunSecrets.Credential);
        var url = new Uri(endpoints.DeepSeek.AbsoluteUri.TrimEnd('/') + "/user/balance");
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = new("Bearer", key);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(endpoints.Timeout);
        HttpResponseMessage response;
        try
        {
            response = await clients.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TransientException($"DeepSeek GET /user/balance did not answer within {endpoints.Timeout.TotalSeconds:0} s.");
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            var status = (int)response.StatusCode;
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                var reason = $"deepseek refused the credential ({status}): {ProviderCredentialChecker.ProviderMessage(body, key) ?? "no message"}";
                await store.UpdateCredentialValidationAsync(stored.OrgSlug, stored.CredentialId, CredentialStatus.Invalid, reason, time.GetUtcNow(), CancellationToken.None);
                throw new CredentialRefusedException(reason + "; the integration is now INVALID: set it up again with a valid key.");
            }

            if (status == 429 || status >= 500)
            {
                throw new TransientException(
                    $"DeepSeek GET /user/balance answered {status}: {ProviderCredentialChecker.ProviderMessage(body, key) ?? "no message"}",
                    retryAfter: response.Headers.RetryAfter?.Delta);
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"DeepSeek GET /user/balance answered {status}: {ProviderCredentialChecker.ProviderMessage(body, key) ?? "no message"}");
            }

            var now = time.GetUtcNow();
            var rows = Parse(body, DateOnly.FromDateTime(now.UtcDateTime), now, context.Run.PipelineLoggingId);
            var written = await context.RequireDestination().WriteRowsAsync(rows, cancellationToken);
            return new StepResult(written, new Dictionary<string, object?> { ["currencies"] = rows.Select(r => r["currency"]).ToList() });
        }
    }

    /// <summary>The balance rows of a <c>/user/balance</c> answer; a malformed body is an error naming the field.</summary>
    internal static List<IReadOnlyDictionary<string, object?>> Parse(string body, DateOnly day, DateTimeOffset fetchedAt, string runId)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var available = root.TryGetProperty("is_available", out var a) && a.ValueKind == JsonValueKind.True;
            if (!root.TryGetProperty("balance_infos", out var infos) || infos.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("balance_infos is missing or not a list");
            }

            return [.. infos.EnumerateArray().Select(info => (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?>
            {
                ["snapshot_date"] = day,
                ["currency"] = info.GetProperty("currency").GetString() is { Length: 3 } currency ? currency : throw new FormatException("currency is not an ISO 4217 code"),
                ["total_balance"] = Amount(info, "total_balance"),
                ["granted_balance"] = Amount(info, "granted_balance"),
                ["topped_up_balance"] = Amount(info, "topped_up_balance"),
                ["is_available"] = available,
                ["fetched_at"] = fetchedAt,
                ["pipeline_logging_id"] = runId,
            })];
        }
        catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            throw new TransientException($"DeepSeek GET /user/balance answered a malformed body ({(ex is JsonException ? "not JSON" : ex.Message)}).", ex);
        }
    }

    private static decimal Amount(JsonElement info, string name) =>
        info.GetProperty(name) is { ValueKind: JsonValueKind.String } s && decimal.TryParse(s.GetString(), NumberStyles.Number, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"{name} is not a decimal string");
}
