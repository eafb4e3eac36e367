using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.Core.Tests.Storage;

public sealed class TableSchemaDiffTests
{
    private static readonly DatasetRef Dataset = DatasetRef.ForOrg(OrgSlug.From("acme"), DeploymentEnvironment.Development);

    private static readonly TableSchema Usage = new(
        "usage",
        null,
        [
            new ColumnSchema("day", ColumnType.Date, true, null),
            new ColumnSchema("requests", ColumnType.Int64, false, null),
            new ColumnSchema("note", ColumnType.String, false, null),
        ],
        [],
        [],
        [["day"]]);

    private static string StoredType(ColumnType type) => type switch
    {
        ColumnType.Int64 => "INTEGER",
        _ => "TEXT",
    };

    private static TableSchemaDiff Compute(TableSchema schema, IReadOnlyList<string> indexes, params ExistingColumn[] existing) =>
        TableSchemaDiff.Compute(Dataset, schema, existing, indexes, StoredType);

    [Fact]
    public void Compute_TableMatchesSchema_IsEmpty()
    {
        var diff = Compute(Usage, ["ix_usage_day"], new("day", "TEXT", true), new("requests", "integer", false), new("note", "TEXT", false));

        diff.IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void Compute_NullableColumnMissing_AddsIt()
    {
        var diff = Compute(Usage, ["ix_usage_day"], new("day", "TEXT", true), new("requests", "INTEGER", false));

        diff.ColumnsToAdd.Select(c => c.Name).ShouldBe(["note"]);
        diff.ColumnsToRelax.ShouldBeEmpty();
    }

    [Fact]
    public void Compute_RequiredInTableNullableInSchema_RelaxesIt()
    {
        var diff = Compute(Usage, ["ix_usage_day"], new("day", "TEXT", true), new("requests", "INTEGER", true), new("note", "TEXT", false));

        diff.ColumnsToRelax.Select(c => c.Name).ShouldBe(["requests"]);
        diff.ColumnsToAdd.ShouldBeEmpty();
    }

    [Fact]
    public void Compute_IndexMissing_CreatesIt()
    {
        var diff = Compute(Usage, ["sqlite_autoindex_usage_1"], new("day", "TEXT", true), new("requests", "INTEGER", false), new("note", "TEXT", false));

        diff.IndexesToCreate.ShouldBe([["day"]]);
    }

    [Fact]
    public void Compute_TypeChange_IsRefusedNamingTableColumnAndBothDefinitions()
    {
        var error = Should.Throw<TableSchemaConflictException>(() =>
            Compute(Usage, [], new("day", "TEXT", true), new("requests", "TEXT", false), new("note", "TEXT", false)));

        error.Message.ShouldContain("acme_local.usage");
        error.Message.ShouldContain("column 'requests' is INT64 NULLABLE in the schema but TEXT NULL in the table");
        error.Conflicts.ShouldHaveSingleItem().Column.ShouldBe("requests");
    }

    [Fact]
    public void Compute_NewRequiredColumn_IsRefused()
    {
        var schema = Usage with { Columns = [.. Usage.Columns, new ColumnSchema("region", ColumnType.String, true, null)] };

        var error = Should.Throw<TableSchemaConflictException>(() =>
            Compute(schema, [], new("day", "TEXT", true), new("requests", "INTEGER", false), new("note", "TEXT", false)));

        error.Message.ShouldContain("column 'region' is STRING REQUIRED in the schema but missing in the table");
    }

    [Fact]
    public void Compute_NullableMadeRequired_IsRefused()
    {
        var error = Should.Throw<TableSchemaConflictException>(() =>
            Compute(Usage, [], new("day", "TEXT", false), new("requests", "INTEGER", false), new("note", "TEXT", false)));

        error.Conflicts.ShouldHaveSingleItem().ShouldBe(new TableSchemaConflict("day", "DATE REQUIRED", "TEXT NULL", "NULLABLE made REQUIRED; existing rows may hold NULL"));
    }

    [Fact]
    public void Compute_ColumnTheSchemaNoLongerHas_IsRefused()
    {
        var error = Should.Throw<TableSchemaConflictException>(() =>
            Compute(Usage, [], new("day", "TEXT", true), new("requests", "INTEGER", false), new("note", "TEXT", false), new("legacy", "TEXT", false)));

        error.Conflicts.ShouldHaveSingleItem().Column.ShouldBe("legacy");
        error.Message.ShouldContain("column 'legacy' is absent in the schema but TEXT NULL in the table");
    }

    [Fact]
    public void Compute_SeveralConflicts_NamesEveryOne()
    {
        var error = Should.Throw<TableSchemaConflictException>(() =>
            Compute(Usage, [], new("day", "INTEGER", true), new("requests", "TEXT", false)));

        error.Conflicts.Select(c => c.Column).ShouldBe(["day", "requests"]);
    }

    private static readonly ExistingColumn[] UsageColumns = [new("day", "TEXT", true), new("requests", "INTEGER", false), new("note", "TEXT", false)];

    [Fact]
    public void Compute_KeysMissing_AddsThem()
    {
        var schema = Usage with { PrimaryKey = ["day"], UniqueKeys = [["day", "note"]] };

        var diff = TableSchemaDiff.Compute(Dataset, schema, UsageColumns, ["ix_usage_day"], ExistingKeys.None, StoredType);

        diff.AddPrimaryKey.ShouldBeTrue();
        diff.UniqueKeysToAdd.ShouldBe([["day", "note"]]);
        diff.IsEmpty.ShouldBeFalse();
    }

    [Fact]
    public void Compute_KeysMatch_IsEmpty()
    {
        var schema = Usage with { PrimaryKey = ["day"], UniqueKeys = [["day", "note"]] };

        TableSchemaDiff.Compute(Dataset, schema, UsageColumns, ["ix_usage_day"], new ExistingKeys(["day"], [["day", "note"]]), StoredType).IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void Compute_PrimaryKeyOnOtherColumns_IsRefusedNamingBoth()
    {
        var conflict = Should.Throw<TableSchemaConflictException>(() =>
            TableSchemaDiff.Compute(Dataset, Usage with { PrimaryKey = ["day", "note"] }, UsageColumns, [], new ExistingKeys(["day"], []), StoredType));

        conflict.Message.ShouldContain("PRIMARY KEY (day, note)");
        conflict.Message.ShouldContain("PRIMARY KEY (day)");
    }

    [Fact]
    public void Compute_KeysTheSchemaNoLongerDeclares_AreRefused()
    {
        var conflict = Should.Throw<TableSchemaConflictException>(() =>
            TableSchemaDiff.Compute(Dataset, Usage, UsageColumns, [], new ExistingKeys(["day"], [["note"]]), StoredType));

        conflict.Message.ShouldContain("PRIMARY KEY (day)");
        conflict.Message.ShouldContain("UNIQUE (note)");
        conflict.Message.ShouldContain("upsert");
    }
}
