using Convergence.Core.Configuration;
using Convergence.Core.Errors;
using Convergence.Core.Pricing;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Pricing;

public sealed class PriceListTests
{
    private static readonly DateOnly Start = new(2025, 1, 1);

    private static ModelPrice Price(string model, decimal input, DateOnly from, DateOnly? to = null, decimal output = 10m) =>
        new(model, "chat", input, null, null, null, output, null, null, "USD", from, to, "test");

    [Fact]
    public void Find_PriceChangeMidRange_EachDayUsesThePriceInEffect()
    {
        var list = PriceList.Create(
        [
            Price("gpt-4o", 5m, Start, new DateOnly(2025, 3, 31)),
            Price("gpt-4o", 2.5m, new DateOnly(2025, 4, 1)),
        ]);

        list.Find("gpt-4o", new DateOnly(2025, 3, 31))!.InputPerMtok.ShouldBe(5m);
        list.Find("gpt-4o", new DateOnly(2025, 4, 1))!.InputPerMtok.ShouldBe(2.5m);
        list.Find("gpt-4o", new DateOnly(2024, 12, 31)).ShouldBeNull("no price before the first effective_from");
    }

    [Theory]
    [InlineData("gpt-4o-2024-08-06", "gpt-4o")]
    [InlineData("claude-3-5-sonnet-20241022", "claude-3-5-sonnet")]
    [InlineData("gpt-4o", "gpt-4o")]
    public void Find_DatedVariantWithoutItsOwnRow_UsesTheBaseModel(string reported, string expected)
    {
        var list = PriceList.Create([Price("gpt-4o", 2.5m, Start), Price("claude-3-5-sonnet", 3m, Start)]);

        list.Find(reported, new DateOnly(2025, 6, 1))!.ModelId.ShouldBe(expected);
    }

    [Fact]
    public void Find_DatedVariantWithItsOwnRow_UsesThatRow()
    {
        var list = PriceList.Create([Price("gpt-4o", 2.5m, Start), Price("gpt-4o-2024-05-13", 5m, Start)]);

        list.Find("gpt-4o-2024-05-13", new DateOnly(2025, 6, 1))!.InputPerMtok.ShouldBe(5m);
        list.Find("gpt-4o-mini", new DateOnly(2025, 6, 1)).ShouldBeNull("a different model is not a dated variant");
    }

    [Theory]
    [InlineData("o1-2024-12-17", new[] { "o1-2024-12-17", "o1" })]
    [InlineData("deepseek-v3.2", new[] { "deepseek-v3.2" })]
    [InlineData("model-123", new[] { "model-123" })]
    [InlineData("20241022", new[] { "20241022" })]
    public void Candidates_StripOnlyATrailingReleaseDate(string model, string[] expected) =>
        PriceList.Candidates(model).ShouldBe(expected);

    [Fact]
    public void Validate_NegativePriceOverlapAndBadDates_NameTheField()
    {
        var problems = PriceList.Validate(
        [
            Price("a", -1m, Start),
            Price("b", 1m, Start),
            Price("b", 2m, new DateOnly(2025, 2, 1)),
            Price("c", 1m, new DateOnly(2025, 5, 1), new DateOnly(2025, 4, 1)),
            Price("d", 1m, Start) with { Currency = "usd" },
        ]);

        problems.Keys.Order().ShouldBe(["currency", "effective_from", "effective_to", "input_per_mtok"]);
        problems["effective_from"].Single().ShouldContain("overlaps");
    }

    [Fact]
    public void Create_InvalidPrices_ThrowsRequestValidation() =>
        Should.Throw<RequestValidationException>(() => PriceList.Create([Price("a", -0.01m, Start)])).Errors.Keys.ShouldContain("input_per_mtok");

    [Fact]
    public void Find_AnyDay_ReturnsTheRowWhoseRangeHoldsIt()
    {
        // Property: consecutive, non-overlapping ranges of random lengths; every day maps to the row covering it.
        Prop.ForAll(
            Gen.Choose(1, 40).ListOf().Where(l => l.Count is > 0 and < 8).ToArbitrary(),
            Gen.Choose(0, 400).ToArbitrary(),
            (lengths, offset) =>
            {
                var rows = new List<ModelPrice>();
                var from = Start;
                for (var i = 0; i < lengths.Count; i++)
                {
                    var last = i == lengths.Count - 1;
                    rows.Add(Price("m", i, from, last ? null : from.AddDays(lengths[i] - 1)));
                    from = from.AddDays(lengths[i]);
                }

                var day = Start.AddDays(offset);
                var expected = rows.Single(r => r.AppliesOn(day));
                return PriceList.Create(rows).Find("m", day) == expected;
            }).QuickCheckThrowOnFailure();
    }

    [Theory]
    [InlineData("openai", "gpt-4o", 2.5)]
    [InlineData("anthropic", "claude-sonnet-4-5", 3)]
    [InlineData("deepseek", "deepseek-chat", 0.28)]
    public void Load_ShippedSeed_BuildsAValidListWithDatedVariantLookup(string provider, string model, double input)
    {
        var prices = PriceListCsv.Load(Path.Combine(RepoPaths.Root, "configs", provider, "seed", "data", $"{provider}_pricing.csv"));
        var list = PriceList.Create(prices);

        list.Find(model, new DateOnly(2025, 11, 20))!.InputPerMtok.ShouldBe((decimal)input);
        list.Find(model + "-2099-01-01", new DateOnly(2025, 11, 20))!.ModelId.ShouldBe(model);
    }

    [Fact]
    public void Load_BrokenSeed_NamesFileLineAndField()
    {
        using var temp = new TempDirectory();
        var file = Path.Combine(temp.Path, "p.csv");
        File.WriteAllText(file, string.Join(",", PriceListCsv.Columns) + "\nm,chat,1.5,,,,ten,,,USD,2025-01-01,,x\n");

        var ex = Should.Throw<ConfigurationErrorException>(() => PriceListCsv.Load(file));

        (ex.Line, ex.Field).ShouldBe((2L, "output_per_mtok"));
    }
}
