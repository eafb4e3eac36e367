using Convergence.Core.Costs;
using Convergence.Core.Focus;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Focus;

/// <summary>Properties of the FOCUS mappers and validator over generated money amounts and token counts.</summary>
public sealed class FocusPropertyTests
{
    private static readonly GcpFocusMapper Gcp = new(FocusFixtures.GcpCategories);

    /// <summary>Amounts with up to 9 decimals and 12 integer digits, either sign, as billing exports carry.</summary>
    private static readonly Gen<decimal> Amount =
        Gen.Zip(Gen.Choose(-1_000_000, 1_000_000), Gen.Choose(-999_999_999, 999_999_999))
            .Select(t => t.Item1 * 1_000_000m + t.Item2 / 1_000_000_000m);

    [Fact]
    public void GcpMap_AnyCostAndCredits_EffectiveCostIsBilledCostPlusCredits()
    {
        var gen = Gen.Zip(Amount, Gen.Choose(0, 6).SelectMany(n => Gen.ArrayOf(Amount, n)));

        Prop.ForAll(Arb.From(gen), t =>
            {
                var (cost, credits) = t;
                var row = Gcp.Map(FocusFixtures.Gcp(cost, credits));

                row.BilledCost.ShouldBe(cost);
                row.EffectiveCost.ShouldBe(cost + credits.Sum());
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void GcpMap_NonNegativeCostAnyCredits_IsValidFocus()
    {
        var gen = Gen.Zip(Amount.Select(Math.Abs), Gen.Zip(Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(Amount.Select(a => -Math.Abs(a)), n)), Gen.Elements("regular", "tax")));

        Prop.ForAll(Arb.From(gen), t =>
            {
                var (cost, (credits, type)) = t;
                var row = Gcp.Map(FocusFixtures.Gcp(cost, credits) with { CostType = type });

                FocusFixtures.Validator.Validate([row]).ShouldBeEmpty();
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void LlmMap_AnyTokenCountsAndProvider_IsValidFocusWithCostsAtMostList()
    {
        var counts = Gen.Choose(0, int.MaxValue).Select(n => (long)n);
        var gen = Gen.Zip(Gen.ArrayOf(counts, 5), Gen.Zip(Gen.Elements(LlmProvider.OpenAI, LlmProvider.Anthropic), Gen.Elements(true, false)));

        Prop.ForAll(Arb.From(gen), t =>
            {
                var (c, (provider, batch)) = t;
                var usage = FocusFixtures.Usage(provider, batch) with
                {
                    UncachedInputTokens = c[0], CachedInputTokens = c[1], CacheWrite5mTokens = provider == LlmProvider.Anthropic ? c[2] : 0,
                    CacheWrite1hTokens = provider == LlmProvider.Anthropic ? c[3] : 0, OutputTokens = c[4],
                };
                var cost = FocusFixtures.Calculator.Price(usage);
                var row = LlmFocusMapper.Map(usage, cost, "org-acme");

                FocusFixtures.Validator.Validate([row]).ShouldBeEmpty();
                row.ConsumedQuantity.ShouldBe(usage.TotalTokens);
                row.BilledCost.ShouldBeLessThanOrEqualTo(row.ListCost);
                row.EffectiveCost.ShouldBe(row.BilledCost);
            })
            .Check(PropertyConfig.Default);
    }
}
