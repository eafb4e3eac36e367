using System.Globalization;

namespace Convergence.Core.Focus;

/// <summary>
/// Maps GCP billing export rows to FOCUS, following finopsfoundation/focus_converters' GCP rules: BilledCost is the
/// export's <c>cost</c>, EffectiveCost nets the credits (cost + Σ credits), ListCost is <c>cost_at_list</c> when
/// exported, ServiceCategory comes from the GCP category mapping, ChargeCategory from <c>cost_type</c>.
/// </summary>
/// <remarks>
/// cost_type regular is Usage (Adjustment when its cost is negative, as refunds are), tax is Tax, and adjustment and
/// rounding_error are Adjustment. The billing period is the invoice month, else the usage month (UTC). The
/// subcategory is the category's catch-all "Other (Category)" since the mapping names categories only.
/// </remarks>
public sealed class GcpFocusMapper(GcpServiceCategoryMap categories, string providerName = GcpFocusMapper.Google)
{
    public const string Google = "Google Cloud";

    /// <exception cref="FormatException">The row's cost type or invoice month is not one GCP exports.</exception>
    public FocusRow Map(GcpBillingRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var chargeCategory = (row.CostType ?? "regular") switch
        {
            "regular" => row.Cost < 0 ? "Adjustment" : "Usage",
            "tax" => "Tax",
            "adjustment" or "rounding_error" => "Adjustment",
            var other => throw new FormatException($"cost_type '{other}' is not regular, tax, adjustment or rounding_error."),
        };
        var billingStart = BillingPeriodStart(row);
        var category = categories.Category(row.ServiceDescription);
        var usage = chargeCategory == "Usage";
        return new FocusRow
        {
            BilledCost = row.Cost,
            EffectiveCost = row.NetCost,
            ListCost = row.CostAtList ?? row.Cost,
            ContractedCost = row.Cost,
            BillingCurrency = row.Currency,
            BillingAccountId = row.BillingAccountId,
            BillingPeriodStart = billingStart,
            BillingPeriodEnd = billingStart.AddMonths(1),
            ChargePeriodStart = row.UsageStart.ToUniversalTime(),
            ChargePeriodEnd = row.UsageEnd.ToUniversalTime(),
            ChargeCategory = chargeCategory,
            ChargeDescription = row.SkuDescription,
            ChargeFrequency = "Usage-Based",
            ConsumedQuantity = usage ? row.UsageAmount : null,
            ConsumedUnit = usage && row.UsageAmount is not null ? row.UsageUnit : null,
            PricingQuantity = usage ? row.UsageAmountInPricingUnits ?? row.UsageAmount : null,
            PricingUnit = usage ? row.PricingUnit ?? row.UsageUnit : null,
            InvoiceIssuerName = providerName,
            ProviderName = providerName,
            PublisherName = providerName,
            RegionId = string.IsNullOrEmpty(row.Region) ? row.Location : row.Region,
            ResourceId = row.ResourceName,
            ServiceCategory = category,
            ServiceName = row.ServiceDescription,
            ServiceSubcategory = $"Other ({category})",
            SkuId = row.SkuId,
            SubAccountId = row.ProjectId,
            SubAccountName = row.ProjectName,
            Tags = row.Labels.Count == 0 ? null : row.Labels,
        };
    }

    private static DateTimeOffset BillingPeriodStart(GcpBillingRow row)
    {
        if (row.InvoiceMonth is null)
        {
            var start = row.UsageStart.ToUniversalTime();
            return new DateTimeOffset(start.Year, start.Month, 1, 0, 0, 0, TimeSpan.Zero);
        }

        return DateTime.TryParseExact(row.InvoiceMonth, "yyyyMM", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var month)
            ? new DateTimeOffset(month, TimeSpan.Zero)
            : throw new FormatException($"invoice.month '{row.InvoiceMonth}' is not yyyyMM.");
    }
}
