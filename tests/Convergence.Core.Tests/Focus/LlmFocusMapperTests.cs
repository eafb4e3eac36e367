using Convergence.Core.Costs;
using Convergence.Core.Focus;

namespace Convergence.Core.Tests.Focus;

public sealed class LlmFocusMapperTests
{
    [Theory]
    // gpt-4o-2024-08-06 at gpt-4o rates: 1,000,000 × 2.50 + 200,000 × 1.25 + 50,000 × 10 (/1e6) = 2.50 + 0.25 + 0.50
    [InlineData(LlmProvider.OpenAI, "OpenAI", "OpenAI API", "gpt-4o-2024-08-06", "3.25", 1_250_000)]
    // 100,000 × 3 + 2,000,000 × 0.30 + 200,000 × 3.75 + 50,000 × 6 + 40,000 × 15 (/1e6) = 0.30 + 0.60 + 0.75 + 0.30 + 0.60
    [InlineData(LlmProvider.Anthropic, "Anthropic", "Claude API", "claude-sonnet-4", "2.55", 2_390_000)]
    // 1,000,000 × (0.28 + 0.028 + 0.42) / 1e6
    [InlineData(LlmProvider.DeepSeek, "DeepSeek", "DeepSeek API", "deepseek-chat", "0.728", 3_000_000)]
    public void Map_PricedRow_FillsProviderServiceSkuTokensAndCosts(
        LlmProvider provider, string providerName, string serviceName, string sku, string expectedCost, long tokens)
    {
        var row = FocusFixtures.Llm(provider);
        var cost = decimal.Parse(expectedCost, System.Globalization.CultureInfo.InvariantCulture);

        row.ProviderName.ShouldBe(providerName);
        row.PublisherName.ShouldBe(providerName);
        row.InvoiceIssuerName.ShouldBe(providerName);
        row.ServiceName.ShouldBe(serviceName);
        row.ServiceCategory.ShouldBe("AI and Machine Learning");
        row.ServiceSubcategory.ShouldBe("Generative AI");
        row.SkuId.ShouldBe(sku);
        row.ConsumedQuantity.ShouldBe(tokens);
        row.ConsumedUnit.ShouldBe("Tokens");
        row.SubAccountId.ShouldBe("proj_1");
        row.Tags!["api_key_id"].ShouldBe("key_1");
        row.BilledCost.ShouldBe(cost);
        row.EffectiveCost.ShouldBe(cost);
        row.ListCost.ShouldBe(cost);
        row.BillingCurrency.ShouldBe("USD");
        row.ChargePeriodStart.ShouldBe(new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero));
        row.ChargePeriodEnd.ShouldBe(new DateTimeOffset(2025, 6, 2, 0, 0, 0, TimeSpan.Zero));
        row.BillingPeriodStart.ShouldBe(new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero));
        row.BillingPeriodEnd.ShouldBe(new DateTimeOffset(2025, 7, 1, 0, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public void Map_BatchRow_BilledAtBatchRatesListedAtStandardRates()
    {
        // batch: 1,000,000 × 1.25 + 200,000 × 0.625 + 50,000 × 5 (/1e6) = 1.25 + 0.125 + 0.25 = 1.625; list 3.25
        var row = FocusFixtures.Llm(LlmProvider.OpenAI, batch: true);

        row.BilledCost.ShouldBe(1.625m);
        row.ListCost.ShouldBe(3.25m);
        row.ChargeDescription.ShouldBe("gpt-4o-2024-08-06 tokens (batch)");
        row.SkuPriceId.ShouldBe("gpt-4o@2024-01-01/batch");
    }

    [Fact]
    public void Map_UnpricedRow_Throws()
    {
        var usage = FocusFixtures.Usage(LlmProvider.OpenAI) with { Model = "gpt-9" };
        var cost = FocusFixtures.Calculator.Price(usage);

        Should.Throw<ArgumentException>(() => LlmFocusMapper.Map(usage, cost, "org-acme")).Message.ShouldContain("UnknownModel");
    }

    [Fact]
    public void Map_NoProjectOrKey_LeavesSubAccountAndTagsNull()
    {
        var usage = FocusFixtures.Usage(LlmProvider.Anthropic, project: null, key: null);

        var row = LlmFocusMapper.Map(usage, FocusFixtures.Calculator.Price(usage), "org-acme");

        row.SubAccountId.ShouldBeNull();
        row.Tags.ShouldBeNull();
        FocusFixtures.Validator.Validate([row]).ShouldBeEmpty();
    }
}
