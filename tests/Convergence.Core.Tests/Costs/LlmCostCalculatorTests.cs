using Convergence.Core.Costs;
using Convergence.Core.Pricing;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Costs;

public sealed class LlmCostCalculatorTests
{
    private static readonly DateOnly Day = new(2025, 6, 1);

    // gpt-4o: input 2.50, cached 1.25, output 10.00, batch input 1.25, batch output 5.00 ($ per million tokens).
    private static readonly ModelPrice Gpt4o = new(
        "gpt-4o", "chat", 2.5m, 1.25m, null, null, 10m, 1.25m, 5m, "USD", new DateOnly(2024, 1, 1), null, "test");

    // claude-sonnet-4: input 3, cache read 0.30, cache write 5m 3.75, cache write 1h 6, output 15; no batch prices.
    private static readonly ModelPrice Sonnet = new(
        "claude-sonnet-4", "chat", 3m, 0.3m, 3.75m, 6m, 15m, null, null, "USD", new DateOnly(2024, 1, 1), null, "test");

    // deepseek-chat: input 0.28, cached 0.028, output 0.42; no batch prices, no cache write prices.
    private static readonly ModelPrice DeepSeekChat = new(
        "deepseek-chat", "chat", 0.28m, 0.028m, null, null, 0.42m, null, null, "USD", new DateOnly(2024, 1, 1), null, "test");

    private static LlmCostCalculator Calculator(params ModelPrice[] prices) => new(PriceList.Create(prices));

    private static LlmUsageRow Row(
        string model,
        LlmProvider provider = LlmProvider.OpenAI,
        long uncached = 0,
        long cached = 0,
        long write5m = 0,
        long write1h = 0,
        long output = 0,
        bool batch = false,
        DateOnly? day = null) =>
        new(day ?? Day, provider, model, "proj_1", "key_1", batch, uncached, cached, write5m, write1h, output, 1);

    [Fact]
    public void Price_UncachedCachedAndOutput_EachPartAtItsRate()
    {
        // uncached 1,200,000 × 2.50 / 1e6 = 3.00
        // cached     400,000 × 1.25 / 1e6 = 0.50
        // output     250,000 × 10.0 / 1e6 = 2.50            total 6.00
        var cost = Calculator(Gpt4o).Price(Row("gpt-4o", uncached: 1_200_000, cached: 400_000, output: 250_000));

        cost.Reason.ShouldBe(UnpricedReason.None);
        cost.UncachedInput.ShouldBe(3.00m);
        cost.CachedInput.ShouldBe(0.50m);
        cost.Output.ShouldBe(2.50m);
        cost.Total.ShouldBe(6.00m);
        cost.ListTotal.ShouldBe(6.00m);
        cost.Currency.ShouldBe("USD");
    }

    [Fact]
    public void Price_SmallCounts_KeepsExactDecimalFractions()
    {
        // uncached 1 × 2.50 / 1e6 = 0.0000025; output 3 × 10 / 1e6 = 0.00003; total 0.0000325 (never rounded to 0)
        var cost = Calculator(Gpt4o).Price(Row("gpt-4o", uncached: 1, output: 3));

        cost.Total.ShouldBe(0.0000325m);
    }

    [Fact]
    public void Price_AnthropicCacheWrites_5mAnd1hAtTheirOwnRates()
    {
        // uncached   100,000 × 3.00 / 1e6 = 0.30
        // cache read 2,000,000 × 0.30 / 1e6 = 0.60
        // write 5m   200,000 × 3.75 / 1e6 = 0.75
        // write 1h    50,000 × 6.00 / 1e6 = 0.30
        // output      40,000 × 15.0 / 1e6 = 0.60           total 2.55
        var cost = Calculator(Sonnet).Price(Row(
            "claude-sonnet-4", LlmProvider.Anthropic, uncached: 100_000, cached: 2_000_000, write5m: 200_000, write1h: 50_000, output: 40_000));

        cost.UncachedInput.ShouldBe(0.30m);
        cost.CachedInput.ShouldBe(0.60m);
        cost.CacheWrite5m.ShouldBe(0.75m);
        cost.CacheWrite1h.ShouldBe(0.30m);
        cost.Output.ShouldBe(0.60m);
        cost.Total.ShouldBe(2.55m);
    }

    [Fact]
    public void Price_BatchWithListedBatchPrices_UsesThemAndDiscountsCachedLikeInput()
    {
        // batch input 1.25 (= half of 2.50), so cached is discounted by 1.25/2.50 = 0.5: 1.25 × 0.5 = 0.625
        // uncached 1,000,000 × 1.25  / 1e6 = 1.25
        // cached     800,000 × 0.625 / 1e6 = 0.50
        // output     100,000 × 5.00  / 1e6 = 0.50          total 2.25
        // list (standard rates): 2.50 + 800,000 × 1.25 / 1e6 (1.00) + 100,000 × 10 / 1e6 (1.00) = 4.50
        var cost = Calculator(Gpt4o).Price(Row("gpt-4o", uncached: 1_000_000, cached: 800_000, output: 100_000, batch: true));

        cost.UncachedInput.ShouldBe(1.25m);
        cost.CachedInput.ShouldBe(0.50m);
        cost.Output.ShouldBe(0.50m);
        cost.Total.ShouldBe(2.25m);
        cost.ListTotal.ShouldBe(4.50m);
        cost.BatchDiscountFallback.ShouldBeFalse();
    }

    [Fact]
    public void Price_AnthropicBatchWithoutBatchPrices_FallsBackToTheDocumentedHalfRate()
    {
        // every part at half its rate:
        // uncached 1,000,000 × 1.50  / 1e6 = 1.50
        // write 5m   100,000 × 1.875 / 1e6 = 0.1875
        // output     200,000 × 7.50  / 1e6 = 1.50           total 3.1875; list 3.00 + 0.375 + 3.00 = 6.375
        var cost = Calculator(Sonnet).Price(Row(
            "claude-sonnet-4", LlmProvider.Anthropic, uncached: 1_000_000, write5m: 100_000, output: 200_000, batch: true));

        cost.Total.ShouldBe(3.1875m);
        cost.CacheWrite5m.ShouldBe(0.1875m);
        cost.ListTotal.ShouldBe(6.375m);
        cost.BatchDiscountFallback.ShouldBeTrue();
    }

    [Fact]
    public void Price_DeepSeekBatchWithoutBatchPrice_IsUnpricedNotGuessed()
    {
        var cost = Calculator(DeepSeekChat).Price(Row("deepseek-chat", LlmProvider.DeepSeek, uncached: 10, batch: true));

        cost.Reason.ShouldBe(UnpricedReason.NoBatchPrice);
        cost.Detail.ShouldBe("batch_input_per_mtok");
        cost.IsPriced.ShouldBeFalse();
    }

    [Fact]
    public void Price_PriceChangeMidRange_EachDayUsesThePriceInEffect()
    {
        var before = Gpt4o with { InputPerMtok = 5m, EffectiveFrom = new DateOnly(2025, 1, 1), EffectiveTo = new DateOnly(2025, 3, 31) };
        var after = Gpt4o with { InputPerMtok = 2.5m, EffectiveFrom = new DateOnly(2025, 4, 1) };
        var calculator = Calculator(before, after);

        // 2,000,000 × 5.00 / 1e6 = 10.00 on 31 March; 2,000,000 × 2.50 / 1e6 = 5.00 on 1 April
        calculator.Price(Row("gpt-4o", uncached: 2_000_000, day: new DateOnly(2025, 3, 31))).Total.ShouldBe(10.00m);
        calculator.Price(Row("gpt-4o", uncached: 2_000_000, day: new DateOnly(2025, 4, 1))).Total.ShouldBe(5.00m);
    }

    [Fact]
    public void Price_DatedVariant_UsesItsOwnRowElseTheBaseModel()
    {
        var dated = Gpt4o with { ModelId = "gpt-4o-2024-05-13", InputPerMtok = 5m };
        var calculator = Calculator(Gpt4o, dated);

        // own row: 1,000,000 × 5.00 / 1e6 = 5.00; base row for another release: 1,000,000 × 2.50 / 1e6 = 2.50
        calculator.Price(Row("gpt-4o-2024-05-13", uncached: 1_000_000)).Total.ShouldBe(5.00m);
        var viaBase = calculator.Price(Row("gpt-4o-2024-08-06", uncached: 1_000_000));
        viaBase.Total.ShouldBe(2.50m);
        viaBase.Price!.ModelId.ShouldBe("gpt-4o");
    }

    [Fact]
    public void Price_UnknownModel_IsUnpricedWithTheReason()
    {
        var cost = Calculator(Gpt4o).Price(Row("gpt-9-turbo", uncached: 1_000));

        cost.Reason.ShouldBe(UnpricedReason.UnknownModel);
        cost.Total.ShouldBe(0m);
    }

    [Fact]
    public void Price_KnownModelBeforeItsFirstPrice_IsNoPriceOnDate()
    {
        var cost = Calculator(Gpt4o).Price(Row("gpt-4o-2024-08-06", uncached: 1_000, day: new DateOnly(2023, 12, 31)));

        cost.Reason.ShouldBe(UnpricedReason.NoPriceOnDate);
    }

    [Fact]
    public void Price_CachedTokensWithoutACachedPrice_IsUnpricedNamingTheColumn()
    {
        var noCache = Gpt4o with { CachedInputPerMtok = null };

        var cost = Calculator(noCache).Price(Row("gpt-4o", uncached: 10, cached: 5));

        cost.Reason.ShouldBe(UnpricedReason.MissingPartPrice);
        cost.Detail.ShouldBe("cached_input_per_mtok");
    }

    [Fact]
    public void Price_OpenAiCacheWritesWithoutACacheWritePrice_AreBilledAtTheInputRate_OthersStayUnpriced()
    {
        // OpenAI: 200,000 cache-write tokens × 2.50 / 1e6 = 0.50; 100,000 uncached × 2.50 / 1e6 = 0.25   total 0.75
        var openai = Calculator(Gpt4o).Price(Row("gpt-4o", uncached: 100_000, write5m: 200_000));
        openai.Reason.ShouldBe(UnpricedReason.None);
        openai.CacheWrite5m.ShouldBe(0.50m);
        openai.Total.ShouldBe(0.75m);

        var deepseek = Calculator(DeepSeekChat).Price(Row("deepseek-chat", LlmProvider.DeepSeek, uncached: 10, write5m: 5));
        deepseek.Reason.ShouldBe(UnpricedReason.MissingPartPrice);
        deepseek.Detail.ShouldBe("cache_write_5m_per_mtok");
    }

    [Fact]
    public void Price_NoCachedTokensAndNoCachedPrice_IsPriced()
    {
        var noCache = Gpt4o with { CachedInputPerMtok = null, CacheWrite1hPerMtok = null };

        Calculator(noCache).Price(Row("gpt-4o", uncached: 1_000_000)).Total.ShouldBe(2.50m);
    }

    [Fact]
    public void Price_RequestsUnknown_PricesTheTokensAsWithACount()
    {
        // Anthropic's usage report has no request count: the row carries null, never priced either way.
        var counted = Row("claude-sonnet-4", LlmProvider.Anthropic, uncached: 1_000_000, output: 10_000);

        var cost = Calculator(Sonnet).Price(counted with { Requests = null });

        cost.ShouldBe(Calculator(Sonnet).Price(counted));
        cost.Reason.ShouldBe(UnpricedReason.None);
    }

    [Fact]
    public void Price_NegativeTokens_IsRejected()
    {
        Calculator(Gpt4o).Price(Row("gpt-4o", uncached: -1)).Reason.ShouldBe(UnpricedReason.NegativeTokens);
    }

    [Fact]
    public void Price_AnyTokenCounts_TotalIsTheSumOfPartsAndLinearInTokens()
    {
        var calculator = Calculator(Sonnet);
        var counts = Gen.Choose(0, 50_000_000).Select(n => (long)n);
        var gen = Gen.Zip(Gen.ArrayOf(counts, 5), Gen.Elements(true, false));

        Prop.ForAll(Arb.From(gen), t =>
            {
                var ((uncached, cached, write5m, write1h, output), batch) = ((t.Item1[0], t.Item1[1], t.Item1[2], t.Item1[3], t.Item1[4]), t.Item2);
                var row = Row("claude-sonnet-4", LlmProvider.Anthropic, uncached, cached, write5m, write1h, output, batch);
                var cost = calculator.Price(row);
                var doubled = calculator.Price(row with
                {
                    UncachedInputTokens = 2 * uncached, CachedInputTokens = 2 * cached, CacheWrite5mTokens = 2 * write5m,
                    CacheWrite1hTokens = 2 * write1h, OutputTokens = 2 * output,
                });

                cost.Total.ShouldBe(cost.UncachedInput + cost.CachedInput + cost.CacheWrite5m + cost.CacheWrite1h + cost.Output);
                doubled.Total.ShouldBe(2 * cost.Total);
                cost.ListTotal.ShouldBe(batch ? 2 * cost.Total : cost.Total);
            })
            .Check(PropertyConfig.Default);
    }

    [Theory]
    [InlineData(LlmProvider.OpenAI)]
    [InlineData(LlmProvider.Anthropic)]
    [InlineData(LlmProvider.DeepSeek)]
    public void Price_ShippedSeedList_OneMillionOfEachKindCostsTheListedRates(LlmProvider provider)
    {
        var name = provider.ToString().ToLowerInvariant();
        var prices = PriceListCsv.Load(Path.Combine(RepoPaths.Configs, name, "seed", "data", $"{name}_pricing.csv"));
        var calculator = new LlmCostCalculator(PriceList.Create(prices));

        foreach (var price in prices)
        {
            // 1,000,000 tokens of a kind cost exactly its per-million rate
            var cost = calculator.Price(Row(price.ModelId, provider, uncached: 1_000_000, output: 1_000_000, day: price.EffectiveFrom));

            cost.UncachedInput.ShouldBe(price.InputPerMtok, price.ModelId);
            cost.Output.ShouldBe(price.OutputPerMtok, price.ModelId);
            cost.Total.ShouldBe(price.InputPerMtok + price.OutputPerMtok, price.ModelId);
        }
    }
}
