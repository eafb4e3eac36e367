using Convergence.Core.Costs;
using Convergence.Core.Focus;

namespace Convergence.Core.Tests.Focus;

public sealed class FocusValidatorTests
{
    private static readonly FocusRow Good = FocusFixtures.Llm(LlmProvider.OpenAI);

    [Fact]
    public void Validate_MapperOutputOfEveryProvider_HasNoViolations()
    {
        var gcp = new GcpFocusMapper(FocusFixtures.GcpCategories);
        FocusRow[] rows =
        [
            FocusFixtures.Llm(LlmProvider.OpenAI),
            FocusFixtures.Llm(LlmProvider.OpenAI, batch: true),
            FocusFixtures.Llm(LlmProvider.Anthropic),
            FocusFixtures.Llm(LlmProvider.Anthropic, batch: true),
            FocusFixtures.Llm(LlmProvider.DeepSeek),
            gcp.Map(FocusFixtures.Gcp(1.25m, -0.20m)),
            gcp.Map(FocusFixtures.Gcp(0.10m) with { CostType = "tax" }),
            gcp.Map(FocusFixtures.Gcp(0m) with { Labels = new Dictionary<string, string>() }),
        ];

        FocusFixtures.Validator.Validate(rows).ShouldBeEmpty();
    }

    public static TheoryData<string, string, Func<FocusRow, FocusRow>> BadRows() => new()
    {
        { "BillingCurrency", "not-null", r => r with { BillingCurrency = "" } },
        { "BillingCurrency", "currency-format", r => r with { BillingCurrency = "usd" } },
        { "BillingCurrency", "currency-format", r => r with { BillingCurrency = "US$" } },
        { "BillingAccountId", "not-null", r => r with { BillingAccountId = null! } },
        { "ProviderName", "not-null", r => r with { ProviderName = "" } },
        { "ServiceName", "not-null", r => r with { ServiceName = null! } },
        { "ChargeCategory", "allowed-values", r => r with { ChargeCategory = "usage" } },
        { "ChargeClass", "allowed-values", r => r with { ChargeClass = "Refund" } },
        { "ChargeFrequency", "allowed-values", r => r with { ChargeFrequency = "Daily" } },
        { "PricingCategory", "allowed-values", r => r with { PricingCategory = "Spot" } },
        { "ServiceCategory", "allowed-values", r => r with { ServiceCategory = "AI" } },
        { "ServiceSubcategory", "allowed-values", r => r with { ServiceSubcategory = "Other (Compute)" } },
        { "ChargePeriodEnd", "period-order", r => r with { ChargePeriodEnd = r.ChargePeriodStart } },
        { "BillingPeriodEnd", "period-order", r => r with { BillingPeriodEnd = r.BillingPeriodStart.AddDays(-1) } },
        { "ChargePeriodStart", "utc", r => r with { ChargePeriodStart = new DateTimeOffset(2025, 6, 1, 2, 0, 0, TimeSpan.FromHours(2)) } },
        { "BilledCost", "cost-sign", r => r with { BilledCost = -1m } },
        { "ListCost", "cost-sign", r => r with { ListCost = -0.01m } },
        { "ContractedCost", "cost-sign", r => r with { ContractedCost = -5m } },
        { "BilledCost", "cost-sign", r => r with { ChargeCategory = "Credit", BilledCost = 1m, EffectiveCost = -1m, ConsumedQuantity = null } },
        { "EffectiveCost", "cost-sign", r => r with { ChargeCategory = "Credit", BilledCost = 0m, EffectiveCost = 1m, ConsumedQuantity = null } },
        { "ConsumedQuantity", "usage-only", r => r with { ChargeCategory = "Tax" } },
        { "ConsumedUnit", "unit-with-quantity", r => r with { ConsumedUnit = null } },
        { "PricingUnit", "unit-with-quantity", r => r with { PricingUnit = "" } },
        { "Tags", "key-value-format", r => r with { Tags = new Dictionary<string, string> { [" "] = "x" } } },
    };

    [Theory]
    [MemberData(nameof(BadRows))]
    public void Validate_CraftedBadRow_NamesColumnRuleAndRowIndex(string column, string rule, Func<FocusRow, FocusRow> spoil)
    {
        var violations = FocusFixtures.Validator.Validate([Good, Good, spoil(Good), Good]);

        violations.ShouldNotBeEmpty();
        violations.ShouldAllBe(v => v.RowIndex == 2);
        violations.ShouldContain(v => v.Column == column && v.Rule == rule, string.Join("; ", violations));
    }

    [Fact]
    public void Validate_NegativeCostsOnACorrection_AreAllowed()
    {
        var correction = Good with { ChargeClass = "Correction", BilledCost = -3m, ListCost = -3m, ContractedCost = -3m, EffectiveCost = -3m };

        FocusFixtures.Validator.Validate([correction]).ShouldBeEmpty();
    }

    [Fact]
    public void Validate_SeveralBadRows_ReportsEachWithItsIndex()
    {
        var violations = FocusFixtures.Validator.Validate([Good with { BillingCurrency = "eur" }, Good, Good with { ServiceCategory = "Cloud" }]);

        violations.Select(v => (v.RowIndex, v.Column)).ShouldBe([(0, "BillingCurrency"), (2, "ServiceCategory")]);
        violations[0].ToString().ShouldStartWith("row 0, BillingCurrency (currency-format)");
    }

    [Fact]
    public void Constructor_CatalogWithAMandatoryColumnFocusRowLacks_Throws()
    {
        using var temp = new TestSupport.TempDirectory();
        var path = temp.WriteFile("c.csv",
            "ColumnId,DisplayName,ColumnType,FeatureLevel,AllowsNulls,DataType,ValueFormat,Introduced,PresenceRule,Description\n" +
            string.Concat(FocusFixtures.Catalog.Columns.Select(c => $"{c.Id},x,{c.ColumnType},{c.FeatureLevel},{c.AllowsNulls},{c.DataType},x,1.2,x,x\n")) +
            "InvoiceId,Invoice ID,Dimension,Mandatory,False,String,x,1.2,x,x\n".Replace("InvoiceId", "HostingFee", StringComparison.Ordinal));

        Should.Throw<InvalidOperationException>(() => new FocusValidator(FocusColumnCatalog.Load(path))).Message.ShouldContain("HostingFee");
    }

    [Fact]
    public void Constructor_CatalogTypingAColumnOtherwise_Throws()
    {
        using var temp = new TestSupport.TempDirectory();
        var path = temp.WriteFile("c.csv",
            "ColumnId,DisplayName,ColumnType,FeatureLevel,AllowsNulls,DataType,ValueFormat,Introduced,PresenceRule,Description\n" +
            string.Concat(FocusFixtures.Catalog.Columns.Select(c =>
                $"{c.Id},x,{c.ColumnType},{c.FeatureLevel},{c.AllowsNulls},{(c.Id == "ListCost" ? "String" : c.DataType)},x,1.2,x,x\n")));

        Should.Throw<InvalidOperationException>(() => new FocusValidator(FocusColumnCatalog.Load(path))).Message.ShouldContain("ListCost (String, FocusRow has Decimal)");
    }
}
