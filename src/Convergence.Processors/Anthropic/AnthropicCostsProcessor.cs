using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Core.Storage;
using Convergence.Processors.ProviderApis;

namespace Convergence.Processors.Anthropic;

/// <summary>
/// <c>anthropic.costs</c>: pages through <c>GET /v1/organizations/cost_report</c> (daily buckets grouped by workspace_id
/// and description) for the run's slice and replaces that slice of <c>anthropic_billed_cost_daily</c>.
/// </summary>
/// <remarks>
/// <c>amount</c> is a decimal string in the currency's lowest unit (cents for USD): <c>"123.78912"</c> USD is
/// $1.2378912. It is parsed as a decimal and divided by 100 exactly; a currency other than USD is refused rather than
/// guessed, since its minor unit is not documented.
/// </remarks>
public sealed class AnthropicCostsProcessor(ProviderApiClient client, IControlPlaneStore store, TimeProvider time)
    : ProviderFetchProcessor(client, store, time)
{
    public const string CostReportPath = "v1/organizations/cost_report";

    public override string PsType => "anthropic.costs";

    protected override IntegrationProvider Provider => IntegrationProvider.Anthropic;

    protected override async Task<FetchResult> FetchAsync(FetchRequest request, CancellationToken cancellationToken)
    {
        var buckets = await Client.GetAllBucketsAsync(
            new ProviderApiCall(Provider, CostReportPath, AnthropicUsageProcessor.Query(request, ["workspace_id", "description"]), request.Credential), cancellationToken);
        var rows = new List<Dictionary<string, object?>>();
        foreach (var bucket in buckets)
        {
            var day = AnthropicBuckets.Day(bucket, CostReportPath);
            foreach (var item in AnthropicBuckets.Results(bucket))
            {
                var what = $"anthropic GET {CostReportPath} amount on {day:yyyy-MM-dd}";
                var currency = (Text(item, "currency") ?? "USD").ToUpperInvariant();
                if (currency != "USD")
                {
                    throw new ProviderResponseException($"{what}: currency '{currency}' is not USD; its minor unit is not documented, so it is not converted.");
                }

                var minorUnits = item.TryGetProperty("amount", out var a) ? Amount(a, what) : null;
                rows.Add(new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["usage_date"] = day,
                    ["project_id"] = Text(item, "workspace_id"),
                    ["description"] = Text(item, "description"),
                    ["cost_type"] = Text(item, "cost_type"),
                    ["model"] = Text(item, "model"),
                    ["amount"] = (minorUnits ?? 0m) / 100m,
                    ["currency"] = currency,
                });
            }
        }

        return new FetchResult(rows, new Dictionary<string, object?> { ["buckets"] = buckets.Count });
    }
}
