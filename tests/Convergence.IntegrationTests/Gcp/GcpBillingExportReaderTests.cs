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
