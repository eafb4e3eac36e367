namespace Convergence.Core.Focus;

/// <summary>One month of an OpenAI subscription plan the org holds (a row of <c>openai_subscriptions_monthly</c>).</summary>
/// <param name="Month">The month's first day.</param>
/// <param name="Seats">Seats held that month.</param>
/// <param name="UnitPrice">Price per seat per month.</param>
/// <param name="Cost">Seats × unit price, as computed by <c>openai.subscriptions</c>.</param>
/// <param name="PriceEffectiveFrom">The day the plan's price row took effect.</param>
public sealed record SubscriptionMonth(
    DateOnly Month, string PlanName, string? DisplayName, string BillingPeriod, long Seats, decimal UnitPrice, decimal Cost, string Currency, DateOnly PriceEffectiveFrom);

/// <summary>
/// Maps a month of seats to FOCUS 1.2: a recurring purchase (ChargeCategory <c>Purchase</c>, ChargeFrequency
/// <c>Recurring</c>) whose charge period is the whole month, priced per seat (PricingQuantity = seats, PricingUnit
/// <c>Seats</c>); no consumed quantity (that is for usage). It is charged on the month's first day in
/// <c>cost_focus_daily</c>, the table's partition for it.
/// </summary>
public static class SubscriptionFocusMapper
{
    public const string ServiceName = "ChatGPT";
    public const string SeatUnit = "Seats";

    public static FocusRow Map(SubscriptionMonth month, string billingAccountId)
    {
        ArgumentNullException.ThrowIfNull(month);
        ArgumentException.ThrowIfNullOrEmpty(billingAccountId);
        var start = new DateTimeOffset(month.Month.Year, month.Month.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var provider = LlmFocusMapper.ProviderName(Costs.LlmProvider.OpenAI);
        return new FocusRow
        {
            BilledCost = month.Cost,
            EffectiveCost = month.Cost,
            ListCost = month.Cost,
            ContractedCost = month.Cost,
            BillingCurrency = month.Currency,
            BillingAccountId = billingAccountId,
            BillingPeriodStart = start,
            BillingPeriodEnd = start.AddMonths(1),
            ChargePeriodStart = start,
            ChargePeriodEnd = start.AddMonths(1),
            ChargeCategory = "Purchase",
            ChargeDescription = $"{month.DisplayName ?? month.PlanName}: {month.Seats} seat(s), billed {month.BillingPeriod}",
            ChargeFrequency = "Recurring",
            PricingQuantity = month.Seats,
            PricingUnit = SeatUnit,
            PricingCategory = "Standard",
            InvoiceIssuerName = provider,
            ProviderName = provider,
            PublisherName = provider,
            ServiceCategory = LlmFocusMapper.ServiceCategory,
            ServiceName = ServiceName,
            ServiceSubcategory = LlmFocusMapper.ServiceSubcategory,
            SkuId = month.PlanName,
            SkuPriceId = $"{month.PlanName}@{month.PriceEffectiveFrom:yyyy-MM-dd}",
        };
    }
}
