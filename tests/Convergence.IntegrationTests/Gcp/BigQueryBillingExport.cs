using System.Text.Json.Nodes;
using Convergence.IntegrationTests.Support;
using static Convergence.IntegrationTests.Support.FakeBigQueryResult;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>
/// Results of the standard Cloud Billing export table as <c>configs/gcp/billing_bigquery.yml</c> selects them, in
/// BigQuery's wire form: the export's schema (RECORDs for service, sku, project, location, usage, invoice; REPEATED
/// RECORDs for labels and credits; FLOAT cost and credit amounts; TIMESTAMPs as float seconds) and hand-made rows.
/// </summary>
/// <remarks>
/// <see cref="Rows"/> (8 rows, two accounts, 2025-11-20..21), netted by hand:
/// <code>
/// #  account  day         service        cost       credits                 net
/// 1  A        2025-11-20  Compute        12.5       -2.25 (SUD), -0.75      9.5
/// 2  A        2025-11-20  Compute        0.333333   —                       0.333333
/// 3  A        2025-11-20  BigQuery       4.2        -4.2 (FreeTrial)        0
/// 4  A        2025-11-21  Cloud Storage  0.000001   —                       0.000001
/// 5  A        2025-11-21  Compute        7.77       -1.11 (CUD)             6.66
/// 6  B        2025-11-20  Cloud Run      100.01     -0.01                   100
/// 7  B        2025-11-21  Cloud Run      3.1        -0.05, -0.05            3
/// 8  B        2025-11-21  (tax)          0.5        —                       0.5
/// A 2025-11-20: cost 17.033333, credits -7.2,  net 9.833333
/// A 2025-11-21: cost 7.770001,  credits -1.11, net 6.660001
/// B 2025-11-20: cost 100.01,    credits -0.01, net 100
/// B 2025-11-21: cost 3.6,       credits -0.1,  net 3.5
/// total: cost 128.413334, credits -8.42, net 119.993334
/// </code>
/// </remarks>
public static class BigQueryBillingExport
{
    public const string AccountA = "01A2B3-C4D5E6-F7A8B9";
    public const string AccountB = "0B1C2D-3E4F5A-6B7C8D";

    public const string Schema = """
        {"fields": [
          {"name": "billing_account_id", "type": "STRING", "mode": "NULLABLE"},
          {"name": "service", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "id", "type": "STRING", "mode": "NULLABLE"}, {"name": "description", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "sku", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "id", "type": "STRING", "mode": "NULLABLE"}, {"name": "description", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "usage_start_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
          {"name": "usage_end_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
          {"name": "project", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "id", "type": "STRING", "mode": "NULLABLE"}, {"name": "name", "type": "STRING", "mode": "NULLABLE"},
            {"name": "labels", "type": "RECORD", "mode": "REPEATED", "fields": [
              {"name": "key", "type": "STRING", "mode": "NULLABLE"}, {"name": "value", "type": "STRING", "mode": "NULLABLE"}]},
            {"name": "ancestry_numbers", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "labels", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "key", "type": "STRING", "mode": "NULLABLE"}, {"name": "value", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "system_labels", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "key", "type": "STRING", "mode": "NULLABLE"}, {"name": "value", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "location", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "location", "type": "STRING", "mode": "NULLABLE"}, {"name": "country", "type": "STRING", "mode": "NULLABLE"},
            {"name": "region", "type": "STRING", "mode": "NULLABLE"}, {"name": "zone", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "export_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
          {"name": "cost", "type": "FLOAT", "mode": "NULLABLE"},
          {"name": "currency", "type": "STRING", "mode": "NULLABLE"},
          {"name": "currency_conversion_rate", "type": "FLOAT", "mode": "NULLABLE"},
          {"name": "usage", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "amount", "type": "FLOAT", "mode": "NULLABLE"}, {"name": "unit", "type": "STRING", "mode": "NULLABLE"},
            {"name": "amount_in_pricing_units", "type": "FLOAT", "mode": "NULLABLE"}, {"name": "pricing_unit", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "credits", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "name", "type": "STRING", "mode": "NULLABLE"}, {"name": "amount", "type": "FLOAT", "mode": "NULLABLE"},
            {"name": "full_name", "type": "STRING", "mode": "NULLABLE"}, {"name": "id", "type": "STRING", "mode": "NULLABLE"},
            {"name": "type", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "invoice", "type": "RECORD", "mode": "NULLABLE", "fields": [{"name": "month", "type": "STRING", "mode": "NULLABLE"}]},
          {"name": "cost_type", "type": "STRING", "mode": "NULLABLE"},
          {"name": "partition_date", "type": "DATE", "mode": "NULLABLE"}
        ]}
        """;

    /// <summary>The eight hand-netted rows of the class remarks, in order.</summary>
    public static FakeBigQueryResult Rows() => new(Schema,
    [
        Row(AccountA, "6F81-5844-456A", "Compute Engine", "2025-11-20T10:00:00Z", "12.5", [("SustainedUsageDiscount", "-2.25", "SUSTAINED_USAGE_DISCOUNT"), ("FreeTrial:Credit-01A2B3", "-0.75", "PROMOTION")], [("team", "data"), ("env", "prod")]),
        Row(AccountA, "6F81-5844-456A", "Compute Engine", "2025-11-20T11:00:00Z", "0.333333", [], []),
        Row(AccountA, "24E6-581D-38E5", "BigQuery", "2025-11-20T12:00:00Z", "4.2", [("FreeTrial:Credit-01A2B3", "-4.2", "PROMOTION")], []),
        Row(AccountA, "95FF-2EF5-5EA1", "Cloud Storage", "2025-11-21T01:00:00Z", "1.0E-6", [], []),
        Row(AccountA, "6F81-5844-456A", "Compute Engine", "2025-11-21T02:00:00Z", "7.77", [("CommittedUsageDiscount", "-1.11", "COMMITTED_USAGE_DISCOUNT")], []),
        Row(AccountB, "152E-C115-5142", "Cloud Run", "2025-11-20T05:00:00Z", "100.01", [("Promo", "-0.01", "PROMOTION")], []),
        Row(AccountB, "152E-C115-5142", "Cloud Run", "2025-11-21T05:00:00Z", "3.1", [("Promo", "-0.05", "PROMOTION"), ("SustainedUsageDiscount", "-0.05", "SUSTAINED_USAGE_DISCOUNT")], []),
        Row(AccountB, "152E-C115-5142", "Cloud Run", "2025-11-21T00:00:00Z", "0.5", [], [], costType: "tax"),
    ]);

    /// <summary>One export row in BigQuery's wire form.</summary>
    public static JsonObject Row(
        string account, string serviceId, string service, string start, string cost,
        (string Name, string Amount, string Type)[] credits, (string Key, string Value)[] labels, string costType = "regular", string project = "acme-prod-1")
    {
        var begin = DateTimeOffset.Parse(start, System.Globalization.CultureInfo.InvariantCulture);
        return Record(
            V(account),
            Record(V(serviceId), V(service)),
            Record(V("SKU-" + serviceId[..4]), V(service + " usage")),
            Timestamp(begin),
            Timestamp(begin.AddHours(1)),
            Record(V(project), V(project), Repeated(), V("/123456789/")),
            Repeated([.. labels.Select(l => (JsonNode?)Record(V(l.Key), V(l.Value)))]),
            Repeated(),
            Record(V("europe-west1"), V("BE"), V("europe-west1"), null),
            Timestamp(begin.AddHours(6).AddTicks(1_234_560)),
            V(cost),
            V("USD"),
            V("1.0"),
            Record(V("3600.0"), V("seconds"), V("1.0"), V("hour")),
            Repeated([.. credits.Select(c => (JsonNode?)Record(V(c.Name), V(c.Amount), null, V(c.Name), V(c.Type)))]),
            Record(V("202511")),
            V(costType),
            V(begin.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)));
    }
}
