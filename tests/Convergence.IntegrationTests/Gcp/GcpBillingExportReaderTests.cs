using Convergence.Core.Errors;
using Convergence.Processors.Gcp;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>The export reader's records: one array refilled per row, labels parsed once per distinct text.</summary>
public sealed class GcpBillingExportReaderTests : IDisposable
{
    private const string Header = "billing_account_id,usage_start_time,cost,currency,labels,credits";

    private readonly string _file = Path.Combine(Path.GetTempPath(), $"convergence-reader-{Guid.NewGuid():N}.csv");

    public void Dispose() => File.Delete(_file);

    [Fact]
    public void RepeatedAndAlternatingLabels_EachRowGetsItsOwnJson()
    {
        File.WriteAllLines(_file,
        [
            Header,
            "A,2020-11-01 00:00:00+00:00,1.5,USD,\"[{'key': 'env', 'value': 'prod'}]\",[]",
            "A,2020-11-01 01:00:00+00:00,2,USD,\"[{'key': 'env', 'value': 'prod'}]\",\"[{'name': 'c', 'amount': -0.5}]\"",
            "A,2020-11-01 02:00:00+00:00,,USD,\"[{'key': 'env', 'value': 'dev'}]\",[]",
            "A,2020-11-01 03:00:00+00:00,3,USD,\"[{'key': 'env', 'value': 'prod'}]\",[]",
            "A,2020-11-01 04:00:00+00:00,4,USD,,[]",
        ]);

        var labels = GcpBillingExportReader.Columns.ToList().IndexOf("labels");
        var cost = GcpBillingExportReader.Columns.ToList().IndexOf("cost");
        var net = GcpBillingExportReader.Columns.ToList().IndexOf("cost_after_credits");
        var rows = new List<(object? Labels, object? Net)>();
        var error = Should.Throw<RequestValidationException>(() =>
        {
            foreach (var record in GcpBillingExportReader.ReadRecords(_file, "r.csv", jsonLines: false, CancellationToken.None))
            {
                record.Length.ShouldBe(GcpBillingExportReader.Columns.Count);
                record[^1].ShouldBe("r.csv");
                rows.Add((record[labels], record[net]));
                record[cost].ShouldNotBeNull();
            }
        });

        // Row 3 has no cost (required): the read stops there naming the line, after two rows read in full.
        error.Message.ShouldContain("r.csv line 4");
        rows.ShouldBe([("{\"env\":\"prod\"}", 1.5m), ("{\"env\":\"prod\"}", 1.5m)]);
    }

    [Fact]
    public void NumbersInstantsAndDates_ParsedFromTheReadersBuffer_EachRowItsOwn()
    {
        // Parsed columns never become strings: their text is read from the CSV reader's buffer, which the next row
        // overwrites. Quoted, empty and leading columns, a blank line and a timestamp needing the slow parser.
        File.WriteAllLines(_file,
        [
            "cost,usage_start_time,billing_account_id,currency,usage.amount,partition_date,export_time,credits",
            "1.50,2020-11-01 00:00:00+00:00,A,USD,\"12.0\",2020-11-01,2020-11-01 06:00:01.123456+00:00,\"[{'amount': -0.25}]\"",
            "",
            "-2e-3,\"2020-11-02T01:00:00Z\",B,USD,,,2020-11-02 06:00:00 UTC,[]",
            "3,2020-11-03 02:00:00+00:00,A,USD,7,2020-11-03 00:00:00+00:00,\"Nov 3, 2020 06:00:00\",",
        ]);

        var columns = GcpBillingExportReader.Columns.ToList();
        var read = GcpBillingExportReader.ReadRecords(_file, "r.csv", jsonLines: false, CancellationToken.None)
            .Select(r => new[] { "cost", "usage_start_time", "usage_amount", "partition_date", "export_time", "usage_date", "cost_after_credits", "source_line" }
                .Select(c => r[columns.IndexOf(c)]).ToArray())
            .ToList();

        var utc = TimeSpan.Zero;
        read.Count.ShouldBe(3);
        read[0].ShouldBe([1.50m, new DateTimeOffset(2020, 11, 1, 0, 0, 0, utc), 12.0m, new DateOnly(2020, 11, 1), new DateTimeOffset(2020, 11, 1, 6, 0, 1, utc).AddTicks(1_234_560), new DateOnly(2020, 11, 1), 1.25m, 2L]);
        read[1].ShouldBe([-0.002m, new DateTimeOffset(2020, 11, 2, 1, 0, 0, utc), null, null, new DateTimeOffset(2020, 11, 2, 6, 0, 0, utc), new DateOnly(2020, 11, 2), -0.002m, 4L]);
        read[2].ShouldBe([3m, new DateTimeOffset(2020, 11, 3, 2, 0, 0, utc), 7m, new DateOnly(2020, 11, 3), new DateTimeOffset(2020, 11, 3, 6, 0, 0, utc), new DateOnly(2020, 11, 3), 3m, 5L]);
        ((int)((decimal)read[0][0]!).Scale).ShouldBe(2);
    }

    [Theory]
    [InlineData("1.5x,2020-11-01 00:00:00+00:00,A,USD", "r.csv line 3, column 1 (cost): '1.5x' is not a decimal number")]
    [InlineData("1,2020-11-31 00:00:00+00:00,A,USD", "r.csv line 3, column 2 (usage_start_time): '2020-11-31 00:00:00+00:00' is not a timestamp")]
    [InlineData(",2020-11-01 00:00:00+00:00,A,USD", "r.csv line 3, column 1 (cost): is empty; the column is required")]
    [InlineData("1,\"\",A,USD", "r.csv line 3, column 2 (usage_start_time): is empty; the column is required")]
    public void BadParsedField_NamesFileLineAndColumn(string row, string message)
    {
        File.WriteAllLines(_file, ["cost,usage_start_time,billing_account_id,currency", "2,2020-11-01 00:00:00+00:00,A,USD", row]);

        var error = Should.Throw<RequestValidationException>(() =>
            GcpBillingExportReader.ReadRecords(_file, "r.csv", jsonLines: false, CancellationToken.None).ToList());

        error.Message.ShouldContain(message);
    }

    [Fact]
    public void LabelsOfEveryRow_MatchTheirOwnText()
    {
        File.WriteAllLines(_file,
        [
            Header,
            "A,2020-11-01 00:00:00+00:00,1,USD,\"[{'key': 'env', 'value': 'prod'}]\",[]",
            "A,2020-11-01 01:00:00+00:00,1,USD,\"[{'key': 'env', 'value': 'dev'}]\",[]",
            "A,2020-11-01 02:00:00+00:00,1,USD,\"[{'key': 'env', 'value': 'prod'}]\",[]",
            "A,2020-11-01 03:00:00+00:00,1,USD,,[]",
            "A,2020-11-01 04:00:00+00:00,1,USD,\"[{'key': 'env', 'value': 'dev'}]\",[]",
        ]);

        var labels = GcpBillingExportReader.Columns.ToList().IndexOf("labels");
        var read = GcpBillingExportReader.ReadRecords(_file, "r.csv", jsonLines: false, CancellationToken.None).Select(r => r[labels]).ToList();

        read.ShouldBe(["{\"env\":\"prod\"}", "{\"env\":\"dev\"}", "{\"env\":\"prod\"}", "{}", "{\"env\":\"dev\"}"]);
    }
}
