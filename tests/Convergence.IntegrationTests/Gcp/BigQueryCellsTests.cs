using System.Globalization;
using System.Text.Json;
using Convergence.Core.Errors;
using Convergence.Core.Storage;
using Convergence.Processors.Gcp.BigQuery;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>
/// <see cref="BigQueryCells"/>, <see cref="BigQueryField"/>, <see cref="BigQueryParameters"/> and
/// <see cref="BigQueryIdentifiers"/> on BigQuery's documented wire forms (GCP_REST.md §7.1): every scalar a JSON string,
/// REPEATED as <c>[{"v": …}]</c>, RECORD as <c>{"f": [{"v": …}]}</c>, TIMESTAMP as float seconds.
/// </summary>
public sealed class BigQueryCellsTests
{
    [Theory]
    [InlineData("STRING", "héllo", ColumnType.String, "héllo")]
    [InlineData("INT64", "-9223372036854775808", ColumnType.Int64, -9223372036854775808L)]
    [InlineData("INTEGER", "42", ColumnType.Int64, 42L)]
    [InlineData("NUMERIC", "17", ColumnType.Int64, 17L)]
    [InlineData("STRING", "7", ColumnType.Int64, 7L)]
    [InlineData("FLOAT64", "0.1", ColumnType.Float64, 0.1)]
    [InlineData("FLOAT", "-1.5E-7", ColumnType.Float64, -1.5E-7)]
    [InlineData("FLOAT", "NaN", ColumnType.Float64, double.NaN)]
    [InlineData("INT64", "3", ColumnType.Float64, 3.0)]
    [InlineData("BOOL", "true", ColumnType.Bool, true)]
    [InlineData("BOOLEAN", "FALSE", ColumnType.Bool, false)]
    [InlineData("BOOL", "true", ColumnType.String, "true")]
    [InlineData("INT64", "12", ColumnType.String, "12")]
    [InlineData("JSON", "{\"a\": 1}", ColumnType.Json, "{\"a\": 1}")]
    [InlineData("STRING", "[1, 2]", ColumnType.Json, "[1, 2]")]
    [InlineData("NUMERIC", "0.10", ColumnType.Json, "0.10")]
    [InlineData("BOOL", "false", ColumnType.Json, "false")]
    [InlineData("STRING", "x\"y", ColumnType.String, "x\"y")]
    public void ToColumn_Scalars_ConvertByTheirSchemaType(string type, string cell, ColumnType target, object expected) =>
        BigQueryCells.ToColumn(Cell(cell), Field(type), target).ShouldBe(expected);

    [Theory]
    [InlineData("NUMERIC", "123.456000000", "123.456000000")]
    [InlineData("BIGNUMERIC", "-0.000000000000000000000000001", "-0.000000000000000000000000001")]
    [InlineData("BIGNUMERIC", "79228162514264337593543950335", "79228162514264337593543950335")]
    [InlineData("NUMERIC", "9999999999999999999999999999", "9999999999999999999999999999")]
    [InlineData("INT64", "9007199254740993", "9007199254740993")]
    [InlineData("FLOAT64", "1.0E-6", "0.0000010")]
    [InlineData("FLOAT64", "12.5", "12.5")]
    [InlineData("STRING", "2.50", "2.50")]
    public void ToColumn_Numeric_IsExactNeverThroughADouble(string type, string cell, string expected) =>
        ((decimal)BigQueryCells.ToColumn(Cell(cell), Field(type), ColumnType.Numeric)!).ToString(CultureInfo.InvariantCulture).ShouldBe(expected);

    [Theory]
    [InlineData("BIGNUMERIC", "0.12345678901234567890123456789012345678", "more significant digits than an exact decimal holds")]
    [InlineData("BIGNUMERIC", "578960446186580977117854925043439539266.34992332820282019728792003956564819967", "not an exact decimal")]
    [InlineData("FLOAT64", "Infinity", "has no decimal value")]
    [InlineData("NUMERIC", "99999999999999999999999999999", "not an exact decimal within ±7.9e28")]
    [InlineData("STRING", "12,5", "not an exact decimal")]
    public void ToColumn_Numeric_ThatADecimalCannotHoldExactly_IsAnErrorNotARounding(string type, string cell, string message) =>
        Should.Throw<FormatException>(() => BigQueryCells.ToColumn(Cell(cell), Field(type), ColumnType.Numeric)).Message.ShouldContain(message);

    [Theory]
    [InlineData("1.6049628E9", "2020-11-09T23:00:00.0000000+00:00")]
    [InlineData("1605053372.199", "2020-11-11T00:09:32.1990000+00:00")]
    [InlineData("1.7636346005E9", "2025-11-20T10:30:00.5000000+00:00")]
    [InlineData("-1.0", "1969-12-31T23:59:59.0000000+00:00")]
    [InlineData("0.000001", "1970-01-01T00:00:00.0000010+00:00")]
    [InlineData("2020-11-09 23:00:00 UTC", "2020-11-09T23:00:00.0000000+00:00")]
    public void ToColumn_Timestamp_FromFloatSecondsExactToTheMicrosecond(string cell, string expected) =>
        ((DateTimeOffset)BigQueryCells.ToColumn(Cell(cell), Field("TIMESTAMP"), ColumnType.Timestamp)!).ToString("O", CultureInfo.InvariantCulture).ShouldBe(expected);

    [Fact]
    public void ToColumn_DateDatetimeAndTimestampText_HaveOneFormEach()
    {
        BigQueryCells.ToColumn(Cell("2025-11-20"), Field("DATE"), ColumnType.Date).ShouldBe(new DateOnly(2025, 11, 20));
        BigQueryCells.ToColumn(Cell("2025-11-20T12:34:56.789012"), Field("DATETIME"), ColumnType.Timestamp).ShouldBe(new DateTimeOffset(2025, 11, 20, 12, 34, 56, TimeSpan.Zero).AddTicks(7_890_120));
        BigQueryCells.ToColumn(Cell("2025-11-20"), Field("DATE"), ColumnType.Timestamp).ShouldBe(new DateTimeOffset(2025, 11, 20, 0, 0, 0, TimeSpan.Zero));
        BigQueryCells.ToColumn(Cell("1.6049628E9"), Field("TIMESTAMP"), ColumnType.String).ShouldBe("2020-11-09T23:00:00.000000Z");
        BigQueryCells.ToColumn(Cell("1.6049628E9"), Field("TIMESTAMP"), ColumnType.Json).ShouldBe("\"2020-11-09T23:00:00.000000Z\"");
        BigQueryCells.ToColumn(Cell("23:59:59.5"), Field("TIME"), ColumnType.String).ShouldBe("23:59:59.5");
    }

    [Fact]
    public void ToColumn_Null_IsNullForEveryType()
    {
        foreach (var target in Enum.GetValues<ColumnType>())
        {
            BigQueryCells.ToColumn(Json("null"), Field("INT64"), target).ShouldBeNull();
        }
    }

    [Theory]
    [InlineData("INT64", "12.5", ColumnType.Int64, "'12.5' is not a whole number in the INT64 range")]
    [InlineData("INT64", "9223372036854775808", ColumnType.Int64, "is not a whole number in the INT64 range")]
    [InlineData("NUMERIC", "2.5", ColumnType.Int64, "NUMERIC '2.5' is not a whole number")]
    [InlineData("TIMESTAMP", "1.6049628E9", ColumnType.Date, "is a TIMESTAMP; a DATE column needs a DATE")]
    [InlineData("DATE", "2025-02-30", ColumnType.Date, "'2025-02-30' is not a date (yyyy-MM-dd)")]
    [InlineData("BOOL", "yes", ColumnType.Bool, "'yes' is not true or false")]
    [InlineData("FLOAT64", "1.5", ColumnType.Bool, "is a FLOAT64; a BOOL column cannot take it")]
    [InlineData("STRING", "{not json", ColumnType.Json, "'{not json' is not valid JSON")]
    [InlineData("TIMESTAMP", "yesterday", ColumnType.Timestamp, "'yesterday' is not a TIMESTAMP")]
    [InlineData("BYTES", "AAEC", ColumnType.Numeric, "is a BYTES; a NUMERIC column cannot take it")]
    public void ToColumn_AValueThatDoesNotConvert_SaysWhatItIsAndWhatTheColumnNeeds(string type, string cell, ColumnType target, string message) =>
        Should.Throw<FormatException>(() => BigQueryCells.ToColumn(Cell(cell), Field(type), target)).Message.ShouldContain(message);

    [Fact]
    public void ToColumn_ACellThatIsNotAString_IsAnError() =>
        Should.Throw<FormatException>(() => BigQueryCells.ToColumn(Json("42"), Field("INT64"), ColumnType.Int64)).Message.ShouldBe("a INT64 cell must be a JSON string, not Number");

    [Fact]
    public void ToColumn_RepeatedAndRecord_BecomeJsonTextForJsonOrStringColumnsOnly()
    {
        var credits = Record("credits", "REPEATED", ("name", "STRING"), ("amount", "FLOAT"), ("full_name", "STRING"), ("ok", "BOOL"), ("at", "TIMESTAMP"), ("meta", "JSON"));
        var cell = Json("""[{"v": {"f": [{"v": "Free\"Trial"}, {"v": "-5.0E-6"}, {"v": null}, {"v": "true"}, {"v": "1.6049628E9"}, {"v": "{\"k\":[1]}"}]}}, {"v": {"f": [{"v": "SUD"}, {"v": "NaN"}, {"v": "x"}, {"v": "false"}, {"v": null}, {"v": null}]}}]""");

        BigQueryCells.ToColumn(cell, credits, ColumnType.Json).ShouldBe(
            """[{"name":"Free\u0022Trial","amount":-5.0E-6,"full_name":null,"ok":true,"at":"2020-11-09T23:00:00.000000Z","meta":{"k":[1]}},{"name":"SUD","amount":"NaN","full_name":"x","ok":false,"at":null,"meta":null}]""");
        BigQueryCells.ToColumn(Json("[]"), credits, ColumnType.String).ShouldBe("[]");
        BigQueryCells.ToColumn(Json("""[{"v": "a"}, {"v": null}]"""), Field("STRING", "REPEATED"), ColumnType.Json).ShouldBe("""["a",null]""");

        var invoice = Record("invoice", "NULLABLE", ("month", "STRING"), ("total", "NUMERIC"));
        BigQueryCells.ToColumn(Json("""{"f": [{"v": "202511"}, {"v": "12.50"}]}"""), invoice, ColumnType.Json).ShouldBe("""{"month":"202511","total":12.50}""");
        Should.Throw<FormatException>(() => BigQueryCells.ToColumn(Json("""{"f": [{"v": "202511"}, {"v": "1"}]}"""), invoice, ColumnType.Numeric))
            .Message.ShouldBe("is a RECORD; only a JSON or STRING column can hold it");
        Should.Throw<FormatException>(() => BigQueryCells.ToColumn(Json("""{"f": [{"v": "202511"}]}"""), invoice, ColumnType.Json))
            .Message.ShouldBe("RECORD 'invoice': the row has 1 cells; the schema has 2 fields");
    }

    [Fact]
    public void Flatten_NestedRecords_GiveTheExportsDottedFields()
    {
        var schema = BigQueryField.ParseSchema(JsonDocument.Parse(BigQueryBillingExport.Schema).RootElement);
        var row = BigQueryBillingExport.Row(
            "01A2B3-C4D5E6-F7A8B9", "6F81-5844-456A", "Compute Engine", "2025-11-20T10:00:00Z", "12.5",
            [("SUD", "-2.25", "SUSTAINED_USAGE_DISCOUNT")], [("team", "data")]);
        using var document = JsonDocument.Parse(row.ToJsonString());
        var values = BigQueryCells.RowValues(document.RootElement, schema.Count);
        var flat = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var i = 0; i < schema.Count; i++)
        {
            BigQueryCells.Flatten(values[i], schema[i], string.Empty, flat);
        }

        flat["billing_account_id"].ShouldBe("01A2B3-C4D5E6-F7A8B9");
        flat["service.description"].ShouldBe("Compute Engine");
        flat["usage_start_time"].ShouldBe("2025-11-20T10:00:00.000000Z");
        flat["location.zone"].ShouldBeNull();
        flat["cost"].ShouldBe("12.5");
        flat["usage.amount_in_pricing_units"].ShouldBe("1.0");
        flat["project.labels"].ShouldBe("[]");
        flat["labels"].ShouldBe("""[{"key":"team","value":"data"}]""");
        flat["credits"].ShouldBe("""[{"name":"SUD","amount":-2.25,"full_name":null,"id":"SUD","type":"SUSTAINED_USAGE_DISCOUNT"}]""");
        flat["partition_date"].ShouldBe("2025-11-20");
        flat.ShouldNotContainKey("service");
    }

    [Theory]
    [InlineData("""{"f": "x"}""", "the row is not {\"f\": [cells]}")]
    [InlineData("""{"f": [{"v": "a"}]}""", "the row has 1 cells; the schema has 2 fields")]
    [InlineData("""{"f": [{"v": "a"}, {"x": "b"}]}""", "cell 2 is not {\"v\": value}")]
    public void RowValues_AMalformedRow_SaysHow(string row, string message) =>
        Should.Throw<FormatException>(() => BigQueryCells.RowValues(Json(row), 2)).Message.ShouldBe(message);

    [Theory]
    [InlineData("""{"fields": [{"name": "a"}]}""", "schema.fields[0] has no name or type")]
    [InlineData("""{"fields": [{"name": "r", "type": "RECORD"}]}""", "schema.fields[0] ('r') is a RECORD without fields")]
    [InlineData("""{}""", "the schema has no fields array")]
    public void ParseSchema_Malformed_SaysWhere(string schema, string message) =>
        Should.Throw<FormatException>(() => BigQueryField.ParseSchema(Json(schema))).Message.ShouldBe(message);

    [Fact]
    public void Parameters_AreTypedForBigQuery()
    {
        (BigQueryParameters.TypeOf(new DateOnly(2025, 11, 20)), BigQueryParameters.TextOf(new DateOnly(2025, 11, 20))).ShouldBe(("DATE", "2025-11-20"));
        (BigQueryParameters.TypeOf("acme"), BigQueryParameters.TextOf("acme")).ShouldBe(("STRING", "acme"));
        (BigQueryParameters.TypeOf(31L), BigQueryParameters.TextOf(31L)).ShouldBe(("INT64", "31"));
        (BigQueryParameters.TypeOf(1.25m), BigQueryParameters.TextOf(1.25m)).ShouldBe(("NUMERIC", "1.25"));
        (BigQueryParameters.TypeOf(true), BigQueryParameters.TextOf(true)).ShouldBe(("BOOL", "true"));
        (BigQueryParameters.TypeOf(new DateTimeOffset(2025, 11, 20, 1, 2, 3, TimeSpan.FromHours(2))), BigQueryParameters.TextOf(new DateTimeOffset(2025, 11, 20, 1, 2, 3, TimeSpan.FromHours(2))))
            .ShouldBe(("TIMESTAMP", "2025-11-19 23:02:03.000000 UTC"));
        (BigQueryParameters.TypeOf(null), BigQueryParameters.TextOf(null)).ShouldBe(("STRING", null));
    }

    [Theory]
    [InlineData("acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9", true)]
    [InlineData("a12345.d.t", true)]
    [InlineData("acme.billing_export.t", false)]
    [InlineData("acme-billing-.ds.t", false)]
    [InlineData("1acme-billing.ds.t", false)]
    [InlineData("Acme-billing.ds.t", false)]
    [InlineData("acme-billing.ds", false)]
    [InlineData("acme-billing.ds.t.x", false)]
    [InlineData("acme-billing.ds.t`; DROP TABLE x; --", false)]
    [InlineData("acme-billing.d-s.t", false)]
    [InlineData("acme-billing.ds.t\n", false)]
    [InlineData("", false)]
    public void IsTablePath_AcceptsOnlyProjectDatasetTable(string text, bool valid) => BigQueryIdentifiers.IsTablePath(text).ShouldBe(valid);

    [Fact]
    public void Substitute_BackQuotedPlaceholdersOnly_OthersStayForBinding()
    {
        var values = new Dictionary<string, object?> { ["table"] = "acme-billing.ds.t", ["start_date"] = new DateOnly(2025, 11, 20) };

        BigQueryIdentifiers.Substitute("SELECT * FROM `{table}` WHERE d >= {start_date}", values).ShouldBe("SELECT * FROM `acme-billing.ds.t` WHERE d >= {start_date}");
        Should.Throw<RequestValidationException>(() => BigQueryIdentifiers.Substitute("SELECT * FROM `{table}`", new Dictionary<string, object?> { ["table"] = "x`; --" }))
            .Errors["table"].ShouldHaveSingleItem().ShouldContain("must be a BigQuery table as project.dataset.table");
        Should.Throw<RequestValidationException>(() => BigQueryIdentifiers.Substitute("SELECT * FROM `{table}`", new Dictionary<string, object?>()))
            .Errors["table"].ShouldHaveSingleItem().ShouldStartWith("is required");
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    private static JsonElement Cell(string text) => JsonDocument.Parse(JsonSerializer.Serialize(text)).RootElement.Clone();

    private static BigQueryField Field(string type, string mode = "NULLABLE") => new("x", type, mode, []);

    private static BigQueryField Record(string name, string mode, params (string Name, string Type)[] fields) =>
        new(name, "RECORD", mode, [.. fields.Select(f => new BigQueryField(f.Name, f.Type, "NULLABLE", []))]);
}
