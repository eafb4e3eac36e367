using Convergence.Core.Configuration;
using Convergence.Core.Focus;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Focus;

public sealed class FocusColumnCatalogTests
{
    [Fact]
    public void Load_ShippedCatalog_HasTheFocus12ColumnsWithTheirRules()
    {
        var catalog = FocusFixtures.Catalog;

        catalog.Columns.Count.ShouldBe(57);
        catalog.Get("BilledCost").IsMandatory.ShouldBeTrue();
        catalog.Get("BilledCost").AllowsNulls.ShouldBeFalse();
        catalog.Get("BilledCost").DataType.ShouldBe("Decimal");
        catalog.Get("ChargeDescription").AllowsNulls.ShouldBeTrue();
        catalog.Get("SkuId").FeatureLevel.ShouldBe("Conditional");
        catalog.Get("BilledCost").Description.ShouldContain("basis for invoicing, inclusive of all reduced rates and discounts");
    }

    [Fact]
    public void Load_ShippedCatalog_EveryMandatoryColumnIsOnFocusRow()
    {
        FocusFixtures.Catalog.Mandatory.Select(c => c.Id).ShouldBeSubsetOf(FocusRow.Columns.Keys);
        FocusRow.Columns.Keys.Where(id => !FocusFixtures.Catalog.TryGet(id, out var _)).ShouldBeEmpty();
    }

    [Fact]
    public void Get_UnknownColumn_ThrowsNamingItAndTheFile()
    {
        var error = Should.Throw<KeyNotFoundException>(() => FocusFixtures.Catalog.Get("BilledKost"));

        error.Message.ShouldContain("BilledKost");
        error.Message.ShouldContain(FocusColumnCatalog.RelativePath);
    }

    [Fact]
    public void Load_BadFeatureLevel_NamesLineAndField()
    {
        using var temp = new TempDirectory();
        var path = temp.WriteFile("c.csv",
            "ColumnId,DisplayName,ColumnType,FeatureLevel,AllowsNulls,DataType,ValueFormat,Introduced,PresenceRule,Description\n" +
            "BilledCost,Billed Cost,Metric,Mandatory,False,Decimal,Numeric Format,0.5,\"MUST, be present\",\"A \"\"quoted\"\" text\"\n" +
            "ListCost,List Cost,Metric,Sometimes,False,Decimal,Numeric Format,0.5,x,y\n");

        var error = Should.Throw<ConfigurationErrorException>(() => FocusColumnCatalog.Load(path));

        error.Line.ShouldBe(3);
        error.Field.ShouldBe("FeatureLevel");
    }

    [Fact]
    public void Load_QuotedFieldsWithCommasAndQuotes_AreRead()
    {
        using var temp = new TempDirectory();
        var path = temp.WriteFile("c.csv",
            "ColumnId,DisplayName,ColumnType,FeatureLevel,AllowsNulls,DataType,ValueFormat,Introduced,PresenceRule,Description\r\n" +
            "BilledCost,Billed Cost,Metric,Mandatory,False,Decimal,Numeric Format,0.5,\"MUST, be present\",\"A \"\"quoted\"\"\nline\"\r\n");

        var column = FocusColumnCatalog.Load(path).Get("BilledCost");

        column.PresenceRule.ShouldBe("MUST, be present");
        column.Description.ShouldBe("A \"quoted\"\nline");
    }

    [Fact]
    public void GcpCategoryMap_ShippedFile_MapsKnownServicesAndDefaultsToOther()
    {
        var map = FocusFixtures.GcpCategories;

        map.Count.ShouldBe(125);
        map.Category("BigQuery").ShouldBe("Databases");
        map.Category("Cloud Storage").ShouldBe("Storage");
        map.Category("Prediction").ShouldBe("AI and Machine Learning");
        map.Category("A Service Nobody Mapped").ShouldBe("Other");
    }

    [Fact]
    public void GcpCategoryMap_CategoryOutsideFocus_IsAConfigurationError()
    {
        using var temp = new TempDirectory();
        var path = temp.WriteFile("m.csv", "ConsumedService,ServiceCategory\nBigQuery,Databases\nFoo,Quantum Stuff\n");

        var error = Should.Throw<ConfigurationErrorException>(() => GcpServiceCategoryMap.Load(path));

        error.Line.ShouldBe(3);
        error.Field.ShouldBe("ServiceCategory");
    }
}
