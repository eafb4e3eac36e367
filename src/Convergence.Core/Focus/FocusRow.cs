namespace Convergence.Core.Focus;

/// <summary>
/// One row of the unified cost table in FOCUS 1.2 columns: every Mandatory column, and the Conditional and
/// Recommended columns Convergence's providers fill. Money is decimal in <see cref="BillingCurrency"/>; times are UTC
/// with periods as [start, end).
/// </summary>
public sealed record FocusRow
{
    public required decimal BilledCost { get; init; }

    public required decimal EffectiveCost { get; init; }

    public required decimal ListCost { get; init; }

    public required decimal ContractedCost { get; init; }

    public required string BillingCurrency { get; init; }

    public required string BillingAccountId { get; init; }

    public string? BillingAccountName { get; init; }

    public required DateTimeOffset BillingPeriodStart { get; init; }

    public required DateTimeOffset BillingPeriodEnd { get; init; }

    public required DateTimeOffset ChargePeriodStart { get; init; }

    public required DateTimeOffset ChargePeriodEnd { get; init; }

    public required string ChargeCategory { get; init; }

    public string? ChargeClass { get; init; }

    public string? ChargeDescription { get; init; }

    public required string ChargeFrequency { get; init; }

    public decimal? ConsumedQuantity { get; init; }

    public string? ConsumedUnit { get; init; }

    public decimal? PricingQuantity { get; init; }

    public string? PricingUnit { get; init; }

    public string? PricingCategory { get; init; }

    public required string InvoiceIssuerName { get; init; }

    public required string ProviderName { get; init; }

    public required string PublisherName { get; init; }

    public string? RegionId { get; init; }

    public string? RegionName { get; init; }

    public string? ResourceId { get; init; }

    public string? ResourceName { get; init; }

    public required string ServiceCategory { get; init; }

    public required string ServiceName { get; init; }

    public required string ServiceSubcategory { get; init; }

    public string? SkuId { get; init; }

    public string? SkuPriceId { get; init; }

    public string? SubAccountId { get; init; }

    public string? SubAccountName { get; init; }

    /// <summary>Tags as FOCUS key-value format; null when the source has none.</summary>
    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>Each FOCUS column this row carries, by column id, with a reader of its value.</summary>
    public static IReadOnlyDictionary<string, Func<FocusRow, object?>> Columns { get; } = new Dictionary<string, Func<FocusRow, object?>>(StringComparer.Ordinal)
    {
        [nameof(BilledCost)] = r => r.BilledCost,
        [nameof(EffectiveCost)] = r => r.EffectiveCost,
        [nameof(ListCost)] = r => r.ListCost,
        [nameof(ContractedCost)] = r => r.ContractedCost,
        [nameof(BillingCurrency)] = r => r.BillingCurrency,
        [nameof(BillingAccountId)] = r => r.BillingAccountId,
        [nameof(BillingAccountName)] = r => r.BillingAccountName,
        [nameof(BillingPeriodStart)] = r => r.BillingPeriodStart,
        [nameof(BillingPeriodEnd)] = r => r.BillingPeriodEnd,
        [nameof(ChargePeriodStart)] = r => r.ChargePeriodStart,
        [nameof(ChargePeriodEnd)] = r => r.ChargePeriodEnd,
        [nameof(ChargeCategory)] = r => r.ChargeCategory,
        [nameof(ChargeClass)] = r => r.ChargeClass,
        [nameof(ChargeDescription)] = r => r.ChargeDescription,
        [nameof(ChargeFrequency)] = r => r.ChargeFrequency,
        [nameof(ConsumedQuantity)] = r => r.ConsumedQuantity,
        [nameof(ConsumedUnit)] = r => r.ConsumedUnit,
        [nameof(PricingQuantity)] = r => r.PricingQuantity,
        [nameof(PricingUnit)] = r => r.PricingUnit,
        [nameof(PricingCategory)] = r => r.PricingCategory,
        [nameof(InvoiceIssuerName)] = r => r.InvoiceIssuerName,
        [nameof(ProviderName)] = r => r.ProviderName,
        [nameof(PublisherName)] = r => r.PublisherName,
        [nameof(RegionId)] = r => r.RegionId,
        [nameof(RegionName)] = r => r.RegionName,
        [nameof(ResourceId)] = r => r.ResourceId,
        [nameof(ResourceName)] = r => r.ResourceName,
        [nameof(ServiceCategory)] = r => r.ServiceCategory,
        [nameof(ServiceName)] = r => r.ServiceName,
        [nameof(ServiceSubcategory)] = r => r.ServiceSubcategory,
        [nameof(SkuId)] = r => r.SkuId,
        [nameof(SkuPriceId)] = r => r.SkuPriceId,
        [nameof(SubAccountId)] = r => r.SubAccountId,
        [nameof(SubAccountName)] = r => r.SubAccountName,
        [nameof(Tags)] = r => r.Tags,
    };
}
