using Convergence.Core.Errors;
using Convergence.Core.Storage;
using Convergence.Core.Subscriptions;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Subscriptions;

/// <summary>The subscription table's validation and the shipped seed file.</summary>
public sealed class OpenAiSubscriptionTableTests
{
    private static readonly string SeedPath = Path.Combine(RepoPaths.Root, "configs", "openai", "seed", "data", "openai_subscriptions.csv");

    private static OpenAiSubscription Plan(string name = "chatgpt_plus", decimal? price = 20m, string from = "2025-01-01", string? to = null) =>
        new(name, null, price, "USD", OpenAiSubscription.Monthly, 1, DateOnly.Parse(from), to is null ? null : DateOnly.Parse(to), null);

    [Fact]
    public void SeedCsv_HeaderMatchesTheTableSchema()
    {
        var schema = TableSchema.Load(Path.Combine(RepoPaths.Root, "configs", "openai", "schemas", "openai_subscriptions.json"));

        File.ReadLines(SeedPath).First().Split(',').ShouldBe(schema.Columns.Select(c => c.Name).ToArray());
        OpenAiSubscriptionCsv.Columns.ShouldBe(schema.Columns.Select(c => c.Name).ToArray());
    }

    [Theory]
    [InlineData("chatgpt_plus", "20", "monthly")]
    [InlineData("chatgpt_pro", "200", "monthly")]
    [InlineData("chatgpt_business_monthly", "30", "monthly")]
    [InlineData("chatgpt_business_annual", "25", "annual")]
    [InlineData("chatgpt_enterprise", null, "annual")]
    public void SeedCsv_KnownPlan_HasTheListPricePerSeatPerMonth(string plan, string? price, string period)
    {
        var row = OpenAiSubscriptionCsv.Load(SeedPath).Single(p => p.PlanName == plan);

        row.UnitPrice.ShouldBe(price is null ? null : decimal.Parse(price, System.Globalization.CultureInfo.InvariantCulture));
        row.BillingPeriod.ShouldBe(period);
        row.Currency.ShouldBe("USD");
        row.Seats.ShouldBe(0, "the defaults list plans; the org sets the seats it holds");
    }

    [Fact]
    public void Validate_OverlappingRowsOfOnePlan_NamesEffectiveFrom()
    {
        var problems = OpenAiSubscriptionTable.Validate([Plan(from: "2025-01-01"), Plan(price: 25m, from: "2025-06-01")]);

        problems.Keys.ShouldBe(["effective_from"]);
    }

    [Fact]
    public void Validate_ClosedThenOpenRows_AreFineAndFindPicksTheDay()
    {
        var table = OpenAiSubscriptionTable.Create([Plan(from: "2025-01-01", to: "2025-05-31"), Plan(price: 25m, from: "2025-06-01")]);

        table.Find("chatgpt_plus", new DateOnly(2025, 5, 31))!.UnitPrice.ShouldBe(20m);
        table.Find("chatgpt_plus", new DateOnly(2025, 6, 1))!.UnitPrice.ShouldBe(25m);
        table.Find("chatgpt_plus", new DateOnly(2024, 12, 31)).ShouldBeNull();
    }

    [Fact]
    public void Create_NegativePriceAndBadCurrency_ThrowsWithBothFields()
    {
        var ex = Should.Throw<RequestValidationException>(() => OpenAiSubscriptionTable.Create([Plan(price: -0.01m) with { Currency = "US" }]));

        ex.Errors.Keys.ShouldBe(["unit_price", "currency"], ignoreOrder: true);
    }

    [Fact]
    public void SeedCsv_QuotedField_IsAConfigurationError()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "s.csv");
        File.WriteAllLines(path, [string.Join(",", OpenAiSubscriptionCsv.Columns), "\"a\",b,1,USD,monthly,1,2025-01-01,,"]);

        Should.Throw<Configuration.ConfigurationErrorException>(() => OpenAiSubscriptionCsv.Load(path));
    }
}
