namespace Convergence.Core.Focus;

/// <summary>
/// One row of a GCP Cloud Billing export (standard or detailed), the fields FOCUS needs. Amounts are decimal as parsed
/// from the export's text; <see cref="Credits"/> are listed as exported (each amount usually negative).
/// </summary>
/// <param name="InvoiceMonth">The export's <c>invoice.month</c> (yyyyMM), or null to use the usage month.</param>
/// <param name="CostType">regular, tax, adjustment or rounding_error; null is regular.</param>
/// <param name="CostAtList">The export's <c>cost_at_list</c> when present; else the list cost is <see cref="Cost"/>.</param>
/// <param name="Location">The export's <c>location.location</c> (region, multi-region or "global").</param>
/// <param name="Region">The export's <c>location.region</c>, when set.</param>
/// <param name="ResourceName">The detailed export's <c>resource.global_name</c> or <c>resource.name</c>.</param>
public sealed record GcpBillingRow(
    string BillingAccountId,
    string ServiceId,
    string ServiceDescription,
    string SkuId,
    string? SkuDescription,
    string? ProjectId,
    string? ProjectName,
    DateTimeOffset UsageStart,
    DateTimeOffset UsageEnd,
    decimal Cost,
    IReadOnlyList<GcpCredit> Credits,
    string Currency,
    decimal? UsageAmount,
    string? UsageUnit,
    decimal? UsageAmountInPricingUnits,
    string? PricingUnit,
    string? Location,
    string? Region,
    IReadOnlyDictionary<string, string> Labels,
    string? InvoiceMonth = null,
    string? CostType = null,
    decimal? CostAtList = null,
    string? ResourceName = null)
{
    /// <summary>Cost after credits: <see cref="Cost"/> + Σ credit amounts.</summary>
    public decimal NetCost
    {
        get
        {
            var net = Cost;
            foreach (var credit in Credits)
            {
                net += credit.Amount;
            }

            return net;
        }
    }
}
