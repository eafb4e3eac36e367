using Convergence.Core.Focus;

namespace Convergence.Core.Tests.Focus;

public sealed class GcpFocusMapperTests
{
    private static readonly GcpFocusMapper Mapper = new(FocusFixtures.GcpCategories);

    [Fact]
    public void Map_RowWithCredits_NetsThemIntoEffectiveCostOnly()
    {
        // cost 1.25; credits -0.20 and -0.05: effective 1.25 - 0.20 - 0.05 = 1.00
        var row = Mapper.Map(FocusFixtures.Gcp(1.25m, -0.20m, -0.05m));

        row.BilledCost.ShouldBe(1.25m);
        row.ListCost.ShouldBe(1.25m);
        row.ContractedCost.ShouldBe(1.25m);
        row.EffectiveCost.ShouldBe(1.00m);
    }

    [Fact]
    public void Map_Row_FillsServiceCategoryAccountsPeriodsAndTags()
    {
        var row = Mapper.Map(FocusFixtures.Gcp());

        row.ProviderName.ShouldBe("Google Cloud");
        row.ServiceName.ShouldBe("BigQuery");
        row.ServiceCategory.ShouldBe("Databases");
        row.ServiceSubcategory.ShouldBe("Other (Databases)");
        row.SkuId.ShouldBe("D5A4-0C3E-4DA4");
        row.ChargeDescription.ShouldBe("Analysis");
        row.BillingAccountId.ShouldBe("000000-B0BBA4-940A77");
        row.SubAccountId.ShouldBe("billing-example");
        row.SubAccountName.ShouldBe("Billing Example");
        row.RegionId.ShouldBe("us-central1");
        row.ConsumedQuantity.ShouldBe(24909m);
        row.ConsumedUnit.ShouldBe("bytes");
        row.PricingQuantity.ShouldBe(0.0000231983m);
        row.PricingUnit.ShouldBe("gibibyte");
        row.BillingPeriodStart.ShouldBe(new DateTimeOffset(2020, 11, 1, 0, 0, 0, TimeSpan.Zero));
        row.BillingPeriodEnd.ShouldBe(new DateTimeOffset(2020, 12, 1, 0, 0, 0, TimeSpan.Zero));
        row.ChargePeriodStart.ShouldBe(new DateTimeOffset(2020, 11, 9, 23, 0, 0, TimeSpan.Zero));
        row.Tags!["env"].ShouldBe("prod");
        row.ChargeCategory.ShouldBe("Usage");
    }

    [Fact]
    public void Map_UnmappedService_IsOther()
    {
        var row = Mapper.Map(FocusFixtures.Gcp() with { ServiceDescription = "Brand New Service" });

        row.ServiceCategory.ShouldBe("Other");
        row.ServiceSubcategory.ShouldBe("Other (Other)");
        FocusFixtures.Validator.Validate([row]).ShouldBeEmpty();
    }

    [Theory]
    [InlineData("regular", 1.0, "Usage")]
    [InlineData(null, 1.0, "Usage")]
    [InlineData("regular", -1.0, "Adjustment")]
    [InlineData("tax", 0.5, "Tax")]
    [InlineData("adjustment", -2.0, "Adjustment")]
    [InlineData("rounding_error", -0.01, "Adjustment")]
    public void Map_CostType_GivesTheChargeCategory(string? costType, double cost, string expected)
    {
        var row = Mapper.Map(FocusFixtures.Gcp((decimal)cost) with { CostType = costType });

        row.ChargeCategory.ShouldBe(expected);
        if (expected != "Usage")
        {
            row.ConsumedQuantity.ShouldBeNull("only Usage rows carry a consumed quantity");
        }

        FocusFixtures.Validator.Validate([row]).ShouldBeEmpty();
    }

    [Fact]
    public void Map_UnknownCostType_Throws()
    {
        Should.Throw<FormatException>(() => Mapper.Map(FocusFixtures.Gcp() with { CostType = "bonus" })).Message.ShouldContain("bonus");
    }

    [Fact]
    public void Map_NoInvoiceMonth_BillsInTheUsageMonth()
    {
        var row = Mapper.Map(FocusFixtures.Gcp() with { InvoiceMonth = null, UsageStart = new DateTimeOffset(2020, 12, 31, 23, 0, 0, TimeSpan.FromHours(-1)), UsageEnd = new DateTimeOffset(2021, 1, 1, 1, 0, 0, TimeSpan.Zero) });

        // 2020-12-31T23:00-01:00 is 2021-01-01T00:00Z: January
        row.BillingPeriodStart.ShouldBe(new DateTimeOffset(2021, 1, 1, 0, 0, 0, TimeSpan.Zero));
        row.ChargePeriodStart.Offset.ShouldBe(TimeSpan.Zero);
    }
}
