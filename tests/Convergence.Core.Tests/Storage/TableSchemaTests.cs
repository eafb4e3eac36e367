using System.Text.Json;
using Convergence.Core.Configuration;
using Convergence.Core.Storage;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Storage;

public sealed class TableSchemaTests : IDisposable
{
    private const string ValidColumns = """[{ "name": "a", "type": "STRING", "mode": "REQUIRED" }, { "name": "b", "type": "INT64" }]""";

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string> BootstrapSchemaFiles
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var file in Directory.EnumerateFiles(RepoPaths.BootstrapSchemas, "*.json").Order(StringComparer.Ordinal))
            {
                data.Add(Path.GetFileName(file));
            }

            return data;
        }
    }

    [Fact]
    public void LoadDirectory_BootstrapSchemas_LoadsAllTwelveTables()
    {
        var schemas = TableSchema.LoadDirectory(RepoPaths.BootstrapSchemas);

        schemas.Count.ShouldBe(12);
        schemas.Select(s => s.Name).ShouldBe(
        [
            "org_api_keys", "org_audit_logs", "org_integration_credentials", "org_meta_dq_results",
            "org_meta_pipeline_runs", "org_meta_step_logs", "org_pipeline_configs", "org_pipeline_execution_queue",
            "org_profiles", "org_scheduled_pipeline_runs", "org_subscriptions", "org_usage_quotas",
        ]);
        schemas.ShouldAllBe(s => s.PrimaryKey.Count > 0);
    }

    [Theory]
    [MemberData(nameof(BootstrapSchemaFiles))]
    public void Load_BootstrapSchemaFile_MatchesTheRawJson(string fileName)
    {
        var path = Path.Combine(RepoPaths.BootstrapSchemas, fileName);

        var schema = TableSchema.Load(path);

        using var raw = JsonDocument.Parse(File.ReadAllText(path));
        var root = raw.RootElement;
        schema.Name.ShouldBe(Path.GetFileNameWithoutExtension(fileName));
        schema.Name.ShouldBe(root.GetProperty("table").GetString());
        var columns = root.GetProperty("columns").EnumerateArray().ToList();
        schema.Columns.Select(c => c.Name).ShouldBe(columns.Select(c => c.GetProperty("name").GetString()!));
        schema.Columns.Select(c => c.Type.ToString().ToUpperInvariant())
            .ShouldBe(columns.Select(c => c.GetProperty("type").GetString()!.ToUpperInvariant()));
        schema.Columns.Select(c => c.Required)
            .ShouldBe(columns.Select(c => c.TryGetProperty("mode", out var m) && m.GetString() == "REQUIRED"));
        schema.PrimaryKey.ShouldBe(root.GetProperty("primary_key").EnumerateArray().Select(e => e.GetString()!));
        schema.PrimaryKey.ShouldAllBe(k => schema.FindColumn(k) != null);
    }

    [Fact]
    public void Load_OrgApiKeys_HasHashLookupAndNoPlainKeyColumn()
    {
        var schema = TableSchema.Load(Path.Combine(RepoPaths.BootstrapSchemas, "org_api_keys.json"));

        schema.FindColumn("org_api_key_hash").ShouldNotBeNull().Type.ShouldBe(ColumnType.String);
        schema.UniqueKeys.ShouldContain(k => k.SequenceEqual(new[] { "org_api_key_hash" }));
        schema.Columns.ShouldNotContain(c => c.Name == "org_api_key");
        schema.FindColumn("no_such_column").ShouldBeNull();
    }

    [Fact]
    public void Load_ValidSchema_MapsTypesModesAndKeys()
    {
        var path = _temp.WriteFile("t.json", """
            {
              // comments are allowed
              "table": "t_1",
              "description": "d",
              "columns": [
                { "name": "a", "type": "STRING", "mode": "REQUIRED", "description": "x" },
                { "name": "b", "type": "int64" },
                { "name": "c", "type": "TIMESTAMP", "mode": "NULLABLE" },
                { "name": "d", "type": "JSON" }
              ],
              "primary_key": ["a"],
              "unique": [["b", "c"]],
              "indexes": [["c"], ["d", "a"]]
            }
            """);

        var schema = TableSchema.Load(path);

        schema.Name.ShouldBe("t_1");
        schema.Description.ShouldBe("d");
        schema.Columns.ShouldBe(
        [
            new ColumnSchema("a", ColumnType.String, true, "x"),
            new ColumnSchema("b", ColumnType.Int64, false, null),
            new ColumnSchema("c", ColumnType.Timestamp, false, null),
            new ColumnSchema("d", ColumnType.Json, false, null),
        ]);
        schema.PrimaryKey.ShouldBe(["a"]);
        schema.UniqueKeys.Count.ShouldBe(1);
        schema.UniqueKeys[0].ShouldBe(["b", "c"]);
        schema.Indexes.Count.ShouldBe(2);
        schema.Indexes[1].ShouldBe(["d", "a"]);
    }

    [Fact]
    public void Load_BlockRangeIndexes_AreIndexesMarkedBlockRange()
    {
        var path = _temp.WriteFile("t.json", """
            {
              "table": "t",
              "columns": [{ "name": "a", "type": "STRING" }, { "name": "day", "type": "DATE" }],
              "indexes": [["a"]],
              "block_range_indexes": [["day"]]
            }
            """);

        var schema = TableSchema.Load(path);

        schema.Indexes.ShouldBe([["a"], ["day"]]);
        schema.BlockRangeIndexes.ShouldBe([["day"]]);
        schema.IsBlockRange(["day"]).ShouldBeTrue();
        schema.IsBlockRange(["a"]).ShouldBeFalse();
        schema.IndexName(["day"]).ShouldBe("ix_t_day");
    }

    [Fact]
    public void Load_UnknownRootProperty_FieldNamesTheProperty()
    {
        var path = _temp.WriteFile("t.json", $$"""
            {
              "table": "t",
              "columns": {{ValidColumns}},
              "primary_keys": ["a"]
            }
            """);

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path));

        ex.Field.ShouldBe("$.primary_keys");
        ex.File.ShouldBe(path);
        ex.Line.ShouldBe(4);
        ex.Message.ShouldContain(path);
        ex.Message.ShouldContain("primary_keys");
    }

    [Fact]
    public void Load_UnknownColumnProperty_FieldNamesTheColumn()
    {
        var path = _temp.WriteFile("t.json", """{ "table": "t", "columns": [{ "name": "a", "type": "STRING", "nullable": true }] }""");

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path));

        ex.Field.ShouldBe("$.columns[0].nullable");
    }

    [Fact]
    public void Load_SyntaxError_ReportsLine()
    {
        var path = _temp.WriteFile("t.json", "{\n  \"table\": \"t\",\n  \"columns\": [\n    { \"name\": \"a\" \"type\": \"STRING\" }\n  ]\n}");

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path));

        ex.Line.ShouldBe(4);
        ex.Message.ShouldContain(path + ":4");
    }

    public static TheoryData<string, string, string> InvalidSchemas => new()
    {
        {
            "bad column type",
            """{ "table": "t", "columns": [{ "name": "a", "type": "STRING" }, { "name": "b", "type": "VARCHAR" }] }""",
            "columns[1].type"
        },
        {
            "numeric column type",
            """{ "table": "t", "columns": [{ "name": "a", "type": "3" }] }""",
            "columns[0].type"
        },
        {
            "missing column type",
            """{ "table": "t", "columns": [{ "name": "a" }] }""",
            "columns[0].type"
        },
        {
            "duplicate column",
            """{ "table": "t", "columns": [{ "name": "a", "type": "STRING" }, { "name": "b", "type": "STRING" }, { "name": "a", "type": "INT64" }] }""",
            "columns[2].name"
        },
        {
            "invalid column name",
            """{ "table": "t", "columns": [{ "name": "a b", "type": "STRING" }] }""",
            "columns[0].name"
        },
        {
            "missing column name",
            """{ "table": "t", "columns": [{ "type": "STRING" }] }""",
            "columns[0].name"
        },
        {
            "bad mode",
            """{ "table": "t", "columns": [{ "name": "a", "type": "STRING", "mode": "REPEATED" }] }""",
            "columns[0].mode"
        },
        {
            "primary key naming a missing column",
            $$"""{ "table": "t", "columns": {{ValidColumns}}, "primary_key": ["a", "zzz"] }""",
            "primary_key"
        },
        {
            "unique key naming a missing column",
            $$"""{ "table": "t", "columns": {{ValidColumns}}, "unique": [["a"], ["zzz"]] }""",
            "unique[1]"
        },
        {
            "index naming a missing column",
            $$"""{ "table": "t", "columns": {{ValidColumns}}, "indexes": [["zzz"]] }""",
            "indexes[0]"
        },
        {
            "block-range index naming a missing column",
            $$"""{ "table": "t", "columns": {{ValidColumns}}, "block_range_indexes": [["zzz"]] }""",
            "block_range_indexes[0]"
        },
        {
            "index declared both ordinary and block-range",
            $$"""{ "table": "t", "columns": {{ValidColumns}}, "indexes": [["a"]], "block_range_indexes": [["a"]] }""",
            "block_range_indexes[0]"
        },
        {
            "invalid table name",
            $$"""{ "table": "Bad-Name", "columns": {{ValidColumns}} }""",
            "table"
        },
        {
            "table name starting with a digit",
            $$"""{ "table": "1t", "columns": {{ValidColumns}} }""",
            "table"
        },
        {
            "missing table name",
            $$"""{ "columns": {{ValidColumns}} }""",
            "table"
        },
        {
            "no columns",
            """{ "table": "t", "columns": [] }""",
            "columns"
        },
        {
            "missing columns",
            """{ "table": "t" }""",
            "columns"
        },
        {
            "json null",
            "null",
            "$"
        },
    };

    [Theory]
    [MemberData(nameof(InvalidSchemas))]
    public void Load_InvalidSchema_FieldNamesTheBadSpot(string scenario, string json, string field)
    {
        var path = _temp.WriteFile("bad.json", json);

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path), scenario);

        ex.Field.ShouldBe(field, scenario);
        ex.File.ShouldBe(path);
        ex.Message.ShouldContain(path);
        ex.Message.ShouldContain($"({field})");
    }

    [Fact]
    public void Load_InvalidTableName_MessageQuotesTheName()
    {
        var path = _temp.WriteFile("bad.json", $$"""{ "table": "Bad-Name", "columns": {{ValidColumns}} }""");

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path));

        ex.Problem.ShouldContain("'Bad-Name'");
    }

    [Fact]
    public void LoadDirectory_MissingFolder_ThrowsConfigurationError()
    {
        Should.Throw<ConfigurationErrorException>(() => TableSchema.LoadDirectory(_temp.Combine("nope")));
    }

    [Fact]
    public void LoadDirectory_OneBadFile_FailsNamingThatFile()
    {
        _temp.WriteFile("schemas/a.json", $$"""{ "table": "a", "columns": {{ValidColumns}} }""");
        var bad = _temp.WriteFile("schemas/b.json", """{ "table": "b", "columns": [] }""");

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.LoadDirectory(_temp.Combine("schemas")));

        ex.File.ShouldBe(bad);
    }

    [Theory]
    [InlineData("STRING,INT64")]
    [InlineData("INT64, FLOAT64")]
    [InlineData("String, Json")]
    public void Load_CommaSeparatedColumnType_IsRejected(string type)
    {
        // Enum.TryParse accepts flag-style lists and ORs the values: "INT64, FLOAT64" (1 | 2) silently becomes NUMERIC.
        var path = _temp.WriteFile("bad.json", $$"""{ "table": "t", "columns": [{ "name": "a", "type": "{{type}}" }] }""");

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path));

        ex.Field.ShouldBe("columns[0].type");
    }

    [Theory]
    [InlineData("""{ "table": "t", "columns": [null] }""", "columns[0]")]
    [InlineData("""{ "table": "t", "columns": [{ "name": "a", "type": "STRING" }], "unique": [null] }""", "unique[0]")]
    public void Load_NullEntry_ThrowsConfigurationError(string json, string field)
    {
        var path = _temp.WriteFile("bad.json", json);

        var ex = Should.Throw<ConfigurationErrorException>(() => TableSchema.Load(path));

        ex.Field.ShouldNotBeNull().ShouldStartWith(field);
    }
}
