using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.Core.Tests.Storage;

public sealed class TableSchemaVerdictsTests
{
    private static readonly DatasetRef Dataset = DatasetRef.ForOrg(OrgSlug.From("acme"), DeploymentEnvironment.Development);

    private static readonly TableSchema Usage = new("usage", null, [new ColumnSchema("day", ColumnType.Date, true, null)], [], [], []);

    [Fact]
    public void Fingerprint_IgnoresDescriptionsAndSeesEveryComparedPart()
    {
        var fingerprint = TableSchemaVerdicts.Fingerprint(Usage);

        TableSchemaVerdicts.Fingerprint(Usage with { Description = "daily usage" }).ShouldBe(fingerprint);
        TableSchemaVerdicts.Fingerprint(Usage with { PrimaryKey = ["day"] }).ShouldNotBe(fingerprint);
        TableSchemaVerdicts.Fingerprint(Usage with { UniqueKeys = [["day"]] }).ShouldNotBe(fingerprint);
        TableSchemaVerdicts.Fingerprint(Usage with { Indexes = [["day"]] }).ShouldNotBe(fingerprint);
        TableSchemaVerdicts.Fingerprint(Usage with { Columns = [new ColumnSchema("day", ColumnType.Date, false, null)] }).ShouldNotBe(fingerprint);
    }

    [Fact]
    public void Matches_OnlyTheRememberedSchemaUntilForgotten()
    {
        var verdicts = new TableSchemaVerdicts();
        verdicts.Matches(Dataset, Usage).ShouldBeFalse();

        verdicts.Remember(Dataset, Usage);

        verdicts.Matches(Dataset, Usage).ShouldBeTrue();
        verdicts.Matches(Dataset, Usage with { PrimaryKey = ["day"] }).ShouldBeFalse();
        verdicts.Forget(Dataset, "usage");
        verdicts.Matches(Dataset, Usage).ShouldBeFalse();
        verdicts.Remember(Dataset, Usage);
        verdicts.ForgetDataset(Dataset);
        verdicts.Matches(Dataset, Usage).ShouldBeFalse();
    }
}
