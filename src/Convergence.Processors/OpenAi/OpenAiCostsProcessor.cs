using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Core.Storage;
using Convergence.Processors.ProviderApis;

namespace Convergence.Processors.OpenAi;

/// <summary>
/// <c>openai.costs</c>: pages through <c>GET /organization/costs</c> (daily buckets grouped by project_id and line_item)
/// for the run's slice and replaces that slice of <c>openai_billed_cost_daily</c>: the dollars OpenAI bills, to
/// reconcile with the usage priced from the org's price list.
/// </summary>
/// <remarks>
/// <c>amount.value</c> is a JSON number in the spec (some fixtures send a string); it is read as an exact decimal from
/// the raw text, never through a double. The currency is stored upper-case (OpenAI sends <c>usd</c>).
/// </remarks>
public sealed class OpenAiCostsProcessor(ProviderApiClient client, IControlPlaneStore store, TimeProvider time)
    : ProviderFetchProcessor(client, store, time)
{
    public const string CostsPath = "organization/costs";

    public override string PsType => "openai.costs";

    protected override IntegrationProvider Provider => IntegrationProvider.OpenAi;

    protected override async Task<FetchResult> FetchAsync(FetchRequest request, CancellationToken cancellationToken)
    {
        var buckets = await Client.GetAllBucketsAsync(
            new ProviderApiCall(Provider, CostsPath, OpenAiUsageProcessor.Query(request, ["project_id", "line_item"]), request.Credential), cancellationToken);
        var rows = new List<Dictionary<string, object?>>();
        foreach (var bucket in buckets)
        {
            var day = OpenAiBuckets.Day(bucket, CostsPath);
            foreach (var result in OpenAiBuckets.Results(bucket))
            {
                var amount = result.TryGetProperty("amount", out var a) && a.ValueKind == JsonValueKind.Object ? a : default;
                var value = amount.ValueKind == JsonValueKind.Object && amount.TryGetProperty("value", out var v)
                    ? Amount(v, $"openai GET {CostsPath} amount.value on {day:yyyy-MM-dd}")
                    : null;
                rows.Add(new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["usage_date"] = day,
                    ["project_id"] = Text(result, "project_id"),
                    ["line_item"] = Text(result, "line_item"),
                    ["amount"] = value ?? 0m,
                    ["currency"] = (amount.ValueKind == JsonValueKind.Object ? Text(amount, "currency") : null)?.ToUpperInvariant() ?? "USD",
                });
            }
        }

        return new FetchResult(rows, new Dictionary<string, object?> { ["buckets"] = buckets.Count });
    }
}
