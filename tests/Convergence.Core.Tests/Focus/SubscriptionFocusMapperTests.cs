using Convergence.Core.Focus;

namespace Convergence.Core.Tests.Focus;

/// <summary>Held ChatGPT seats as FOCUS 1.2 rows: a recurring purchase over the month, valid under the column rules.</summary>
public sealed class SubscriptionFocusMapperTests
{
    private static readonly SubscriptionMonth Business = new(
        new DateOnly(2025, 12, 1), "chatgpt_business_annual", "ChatGPT Business (annual)", "annual", 3, 27.5m, 82.5m, "USD", new DateOnly(2025, 12, 1));

    [Fact]
    public void Map_SeatsOfAMonth_AreARecurringPurchaseOverTheWholeMonth()
    {
        var row = SubscriptionFocusMapper.Map(Business, "acme/openai");

        row.ChargeCategory.ShouldBe("Purchase");
        row.ChargeFrequency.ShouldBe("Recurring");
        row.ChargePeriodStart.ShouldBe(new DateTimeOffset(2025, 12, 1, 0, 0, 0, TimeSpan.Zero));
        row.ChargePeriodEnd.ShouldBe(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        row.BilledCost.ShouldBe(82.5m);
        row.EffectiveCost.ShouldBe(82.5m);
        row.PricingQuantity.ShouldBe(3m);
        row.PricingUnit.ShouldBe("Seats");
        row.ConsumedQuantity.ShouldBeNull();
        row.ServiceName.ShouldBe("ChatGPT");
        row.ProviderName.ShouldBe("OpenAI");
        row.SkuId.ShouldBe("chatgpt_business_annual");
        row.SkuPriceId.ShouldBe("chatgpt_business_annual@2025-12-01");
        row.ChargeDescription.ShouldBe("ChatGPT Business (annual): 3 seat(s), billed annual");
    }

    [Fact]
    public void Map_Output_PassesTheFocusColumnRules()
    {
        var validator = new FocusValidator(FocusFixtures.Catalog);

        validator.Validate([SubscriptionFocusMapper.Map(Business, "acme/openai")]).ShouldBeEmpty();
    }
}
