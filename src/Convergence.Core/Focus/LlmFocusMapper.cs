using Convergence.Core.Costs;

namespace Convergence.Core.Focus;

/// <summary>
/// Maps a priced <see cref="LlmUsageRow"/> to a FOCUS row: the provider is ProviderName, PublisherName and
/// InvoiceIssuerName; its API product is ServiceName ("AI and Machine Learning" / "Generative AI"); the model is
/// SkuId; all tokens are the ConsumedQuantity in "Tokens"; the project or workspace is SubAccountId; the API key is a
/// tag. A day of usage is a charge period [day, day + 1) in the calendar month's billing period (UTC).
/// </summary>
/// <remarks>
/// BilledCost, EffectiveCost and ContractedCost are the computed cost (batch rates included); ListCost is the same
/// usage at the standard rates. Unpriced rows are not mapped: a FOCUS row of zero cost would hide them.
/// </remarks>
public static class LlmFocusMapper
{
    public const string ServiceCategory = "AI and Machine Learning";
    public const string ServiceSubcategory = "Generative AI";
    public const string TokenUnit = "Tokens";

    public static string ProviderName(LlmProvider provider) => provider switch
    {
        LlmProvider.OpenAI => "OpenAI",
        LlmProvider.Anthropic => "Anthropic",
        LlmProvider.DeepSeek => "DeepSeek",
        _ => throw new ArgumentOutOfRangeException(nameof(provider), provider, "not an LLM provider Convergence maps"),
    };

    /// <summary>The provider's API product, FOCUS ServiceName.</summary>
    public static string ServiceName(LlmProvider provider) => provider switch
    {
        LlmProvider.OpenAI => "OpenAI API",
        LlmProvider.Anthropic => "Claude API",
        LlmProvider.DeepSeek => "DeepSeek API",
        _ => throw new ArgumentOutOfRangeException(nameof(provider), provider, "not an LLM provider Convergence maps"),
    };

    /// <summary>Maps one priced row.</summary>
    /// <param name="billingAccountId">The provider account billed: OpenAI or Anthropic organization id, DeepSeek account.</param>
    /// <exception cref="ArgumentException"><paramref name="cost"/> is unpriced; report its reason instead.</exception>
    public static FocusRow Map(LlmUsageRow usage, LlmCost cost, string billingAccountId, string? billingAccountName = null)
    {
        ArgumentNullException.ThrowIfNull(usage);
        ArgumentException.ThrowIfNullOrEmpty(billingAccountId);
        if (!cost.IsPriced || cost.Price is not { } price)
        {
            throw new ArgumentException($"{usage.Model} on {usage.Day:yyyy-MM-dd} is unpriced ({cost.Reason}); report it instead of mapping it to FOCUS.", nameof(cost));
        }

        return Map(usage, cost.Total, cost.ListTotal, price.Currency, price.ModelId, price.EffectiveFrom, billingAccountId, billingAccountName);
    }

    /// <summary>Maps one priced row stored in a <c>{provider}_cost_daily</c> table.</summary>
    /// <param name="priceModelId">The price list's model id that priced the row.</param>
    /// <param name="priceEffectiveFrom">The day the price row took effect.</param>
    public static FocusRow Map(
        LlmUsageRow usage, decimal total, decimal listTotal, string currency, string priceModelId, DateOnly priceEffectiveFrom, string billingAccountId, string? billingAccountName = null)
    {
        ArgumentNullException.ThrowIfNull(usage);
        ArgumentException.ThrowIfNullOrEmpty(billingAccountId);
        var chargeStart = new DateTimeOffset(usage.Day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var billingStart = new DateTimeOffset(usage.Day.Year, usage.Day.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var provider = ProviderName(usage.Provider);
        decimal tokens = usage.TotalTokens;
        return new FocusRow
        {
            BilledCost = total,
            EffectiveCost = total,
            ListCost = listTotal,
            ContractedCost = total,
            BillingCurrency = currency,
            BillingAccountId = billingAccountId,
            BillingAccountName = billingAccountName,
            BillingPeriodStart = billingStart,
            BillingPeriodEnd = billingStart.AddMonths(1),
            ChargePeriodStart = chargeStart,
            ChargePeriodEnd = chargeStart.AddDays(1),
            ChargeCategory = "Usage",
            ChargeDescription = usage.Batch ? $"{usage.Model} tokens (batch)" : $"{usage.Model} tokens",
            ChargeFrequency = "Usage-Based",
            ConsumedQuantity = tokens,
            ConsumedUnit = TokenUnit,
            PricingQuantity = tokens,
            PricingUnit = TokenUnit,
            PricingCategory = "Standard",
            InvoiceIssuerName = provider,
            ProviderName = provider,
            PublisherName = provider,
            ServiceCategory = ServiceCategory,
            ServiceName = ServiceName(usage.Provider),
            ServiceSubcategory = ServiceSubcategory,
            SkuId = usage.Model,
            SkuPriceId = $"{priceModelId}@{priceEffectiveFrom:yyyy-MM-dd}{(usage.Batch ? "/batch" : string.Empty)}",
            SubAccountId = usage.ProjectId,
            Tags = usage.ApiKeyId is { Length: > 0 } key ? new Dictionary<string, string>(StringComparer.Ordinal) { ["api_key_id"] = key } : null,
        };
    }
}
