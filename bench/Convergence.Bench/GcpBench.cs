using System.Diagnostics;
using System.Globalization;
using System.Text;
using Convergence.Api.Configuration;
using Convergence.Api.Extensions;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

/// <summary>
/// GCP billing export ingest. <c>gcp-generate N file</c> writes N rows of a synthetic export with the 29 columns of
/// the shared sample (3 billing accounts, 30 days of November 2020, services and SKUs of the sample, ~40% of rows with
/// credits, ~30% with labels; about 375 bytes a row). <c>gcp-ingest file</c> loads it through the real path: the
/// <c>configs/gcp/billing.yml</c> pipeline run by the executor, <c>gcp.bq_etl</c> with <c>source: file</c>, the
/// SQLite warehouse write with <c>replace_partitions</c>, the step's data-quality check and commit. Usage:
///   dotnet run -c Release --project bench/Convergence.Bench -- gcp-generate 1000000 /tmp/gcp.csv
///   dotnet run -c Release --project bench/Convergence.Bench -- gcp-ingest /tmp/gcp.csv
/// </summary>
internal static class GcpBench
{
    private const string Header =
        "billing_account_id,service.id,service.description,sku.id,sku.description,usage_start_time,usage_end_time,project.id,project.name,project.labels,project.ancestry_numbers,labels,system_labels,location.location,location.country,location.region,location.zone,export_time,cost,currency,currency_conversion_rate,usage.amount,usage.unit,usage.amount_in_pricing_units,usage.pricing_unit,credits,invoice.month,cost_type,partition_date";

    private static readonly string[] Accounts = ["000000-B0BBA4-940A77", "000001-C1CCB5-051B88", "000002-D2DDC6-162C99"];

    private static readonly (string ServiceId, string Service, string SkuId, string Sku, string Unit, string PricingUnit)[] Skus =
    [
        ("FBF2-FC68-171A", "Security Command Center", "D5A4-0C3E-4DA4", "Event Threat Detection Log Ingest Bytes", "bytes", "gibibyte"),
        ("5490-F7B7-8DF6", "Stackdriver Logging", "143F-A1B0-E0BE", "Log Volume", "bytes", "gibibyte"),
        ("24E6-581D-38E5", "BigQuery", "1DF5-1F98-1DD1", "Analysis", "bytes", "tebibyte"),
        ("24E6-581D-38E5", "BigQuery", "947D-3B46-7781", "Active Storage", "byte-seconds", "gibibyte month"),
        ("6F81-5844-456A", "Compute Engine", "6B8F-E63D-832B", "Network Internet Egress from Americas to APAC", "bytes", "gibibyte"),
    ];

    private static readonly string[] Labels =
    [
        "[]", "[]", "[]", "[]", "[]", "[]", "[]",
        "\"[{'key': 'goog-resource-type', 'value': 'bigquery_resource'}]\"",
        "\"[{'key': 'env', 'value': 'prod'}, {'key': 'team', 'value': 'data'}]\"",
        "\"[{'key': 'goog-resource-type', 'value': 'bigquery_dataset'}]\"",
    ];

    public static void Generate(string[] args)
    {
        var rows = long.Parse(args[0], CultureInfo.InvariantCulture);
        var path = args[1];
        var random = new Random(20201108);
        var start = new DateTime(2020, 11, 1, 0, 0, 0, DateTimeKind.Utc);
        var line = new StringBuilder(512);
        using var writer = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 20) { NewLine = "\n" };
        writer.WriteLine(Header);
        long bytes = Header.Length + 1;
        for (long i = 0; i < rows; i++)
        {
            var account = Accounts[i % Accounts.Length];
            var sku = Skus[random.Next(Skus.Length)];
            var hour = start.AddHours(random.Next(30 * 24));
            var cents = random.Next(0, 2_000_000);
            var cost = new decimal(cents, 0, 0, false, 6);
            var credited = random.Next(10) < 4 && cents > 0;
            var credit = credited ? new decimal(random.Next(1, cents + 1), 0, 0, true, 6) : 0m;
            var amount = random.Next(1, 100_000_000);
            line.Clear()
                .Append(account).Append(',').Append(sku.ServiceId).Append(',').Append(sku.Service).Append(',')
                .Append(sku.SkuId).Append(',').Append(sku.Sku).Append(',')
                .Append(Stamp(hour)).Append(',').Append(Stamp(hour.AddHours(1))).Append(',')
                .Append("billing-example-0000").Append(i % 7).Append(",cloud-billing,[],/54643501348/,")
                .Append(Labels[random.Next(Labels.Length)]).Append(",[],us,US,,,")
                .Append(hour.AddHours(6).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)).Append('.')
                .Append(random.Next(1_000_000).ToString("D6", CultureInfo.InvariantCulture)).Append("+00:00,")
                .Append(cost.ToString(CultureInfo.InvariantCulture)).Append(",USD,1.0,")
                .Append(amount.ToString(CultureInfo.InvariantCulture)).Append(".0,").Append(sku.Unit).Append(',')
                .Append((amount / 1073741824.0).ToString("R", CultureInfo.InvariantCulture)).Append(',').Append(sku.PricingUnit).Append(',');
            if (credited)
            {
                line.Append("\"[{'name': 'FreeTrial:Credit-").Append(account).Append("', 'amount': ").Append(credit.ToString(CultureInfo.InvariantCulture))
                    .Append(", 'full_name': None, 'id': 'FreeTrial:Credit', 'type': 'PROMOTION'}]\"");
            }
            else
            {
                line.Append("[]");
            }

            line.Append(",202011,regular,").Append(hour.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).Append(" 00:00:00+00:00");
            writer.WriteLine(line);
            bytes += line.Length + 1;
        }

        Console.WriteLine($"wrote {rows:N0} rows to {path} ({bytes / 1e6:0.0} MB, {(double)bytes / Math.Max(rows, 1):0} B/row)");
    }

    /// <summary>Reads and converts the file without writing: the parser's share of the ingest.</summary>
    public static void Parse(string[] args)
    {
        var file = Path.GetFullPath(args[0]);
        var allocated = GC.GetTotalAllocatedBytes();
        var watch = Stopwatch.StartNew();
        long rows = 0;
        foreach (var row in Convergence.Processors.Gcp.GcpBillingExportReader.ReadRecords(file, Path.GetFileName(file), jsonLines: false, CancellationToken.None))
        {
            rows += row.Length > 0 ? 1 : 0;
        }

        Console.WriteLine($"gcp-parse {Path.GetFileName(file)}: {rows} rows in {watch.Elapsed.TotalSeconds:0.00} s, {rows / watch.Elapsed.TotalSeconds:0} rows/s, " +
                          $"{(GC.GetTotalAllocatedBytes() - allocated) / (double)Math.Max(rows, 1):0} B allocated a row (no writes)");
    }

    /// <param name="withFocus">
    /// Whether gcp/billing keeps its focus.normalize step (<c>gcp-pipeline</c>: the whole pipeline, each step timed, to show
    /// that rebuilding FOCUS from the loaded slice streams too); by default the load step alone, which is what
    /// <c>gcp-ingest</c> compares with the native loader.
    /// </param>
    public static async Task IngestAsync(string[] args, string repositoryConfigs, bool withFocus = false)
    {
        var file = Path.GetFullPath(args[0]);
        var work = Directory.CreateTempSubdirectory("convergence-gcp-bench-");
        try
        {
            var configs = Path.Combine(work.FullName, "configs");
            foreach (var source in Directory.EnumerateFiles(repositoryConfigs, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(configs, Path.GetRelativePath(repositoryConfigs, source));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(source, target);
            }

            var billing = Path.Combine(configs, "gcp", "billing.yml");
            var yaml = File.ReadAllText(billing);
            if (!withFocus)
            {
                File.WriteAllText(billing, yaml[..yaml.IndexOf("  - step_id: focus", StringComparison.Ordinal)]);
            }

            var settings = ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["CONVERGENCE_DATA_DIR"] = Path.Combine(work.FullName, "data"),
                ["CONVERGENCE_CONFIGS_DIR"] = configs,
                ["CONVERGENCE_IMPORT_DIR"] = Path.GetDirectoryName(file),
                ["CA_ROOT_API_KEY"] = new string('b', 40),
                // An Npgsql connection string as second argument: the warehouse is that PostgreSQL database instead.
                ["CONVERGENCE_WAREHOUSE"] = args.Length > 1 && args[1] != "sqlite" ? "postgres" : null,
                ["CONVERGENCE_WAREHOUSE_CONNECTION"] = args.Length > 1 && args[1] != "sqlite" ? args[1] : null,
            }).Build());
            await using var services = new ServiceCollection().AddLogging(b => b.SetMinimumLevel(LogLevel.Warning)).AddConvergenceCore(settings).BuildServiceProvider();
            var executor = services.GetRequiredService<PipelineExecutor>();
            var actor = Actor.System("bench");
            var org = OrgSlug.From("bench_gcp");
            await executor.RunAsync(new PipelineRunRequest("setup/bootstrap/pipeline", null, new Dictionary<string, string>(), actor, RunTrigger.Admin), CancellationToken.None);
            await executor.RunAsync(new PipelineRunRequest("setup/organizations/onboarding", org, new Dictionary<string, string>
            {
                ["org_slug"] = org.Value, ["company_name"] = "Bench", ["admin_email"] = "bench@example.com", ["subscription_plan"] = "SCALE",
            }, actor, RunTrigger.Admin), CancellationToken.None);

            // An optional third argument loads the file that many times: every load after the first replaces each
            // (billing account, day) of the previous one, the path of a late correction.
            var loads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
            for (var load = 1; load < loads; load++)
            {
                var again = Stopwatch.StartNew();
                var reload = await executor.RunAsync(new PipelineRunRequest("gcp/billing", org, new Dictionary<string, string>
                {
                    ["source_uri"] = Path.GetFileName(file), ["start_date"] = "2020-11-01", ["end_date"] = "2020-11-30",
                }, actor, RunTrigger.Admin), CancellationToken.None);
                Console.WriteLine($"gcp-ingest load {load} of {loads} (into an {(load == 1 ? "empty" : "filled")} table): {reload.Steps["load_billing_export"].RowsProcessed} rows in {again.Elapsed.TotalSeconds:0.00} s, status {reload.Status}");
            }

            var allocated = GC.GetTotalAllocatedBytes();
            int[] gcs = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
            var paused = GC.GetTotalPauseDuration();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            var result = await executor.RunAsync(new PipelineRunRequest("gcp/billing", org, new Dictionary<string, string>
            {
                ["source_uri"] = Path.GetFileName(file), ["start_date"] = "2020-11-01", ["end_date"] = "2020-11-30",
            }, actor, RunTrigger.Admin), CancellationToken.None);
            watch.Stop();

            var step = result.Steps["load_billing_export"];
            var rows = step.RowsProcessed;
            var megabytes = new FileInfo(file).Length / 1e6;
            using var process = Process.GetCurrentProcess();
            process.Refresh();
            Console.WriteLine($"gcp-ingest {Path.GetFileName(file)}: {rows} rows, {megabytes:0.0} MB, {watch.Elapsed.TotalSeconds:0.00} s, " +
                              $"{rows / watch.Elapsed.TotalSeconds:0} rows/s, {megabytes / watch.Elapsed.TotalSeconds:0.0} MB/s, " +
                              $"allocated {(GC.GetTotalAllocatedBytes() - allocated) / 1e6:0} MB, GCs {GC.CollectionCount(0) - gcs[0]}/{GC.CollectionCount(1) - gcs[1]}/{GC.CollectionCount(2) - gcs[2]} (gen0/1/2), " +
                              $"GC pause {(GC.GetTotalPauseDuration() - paused).TotalSeconds:0.00} s, CPU {(process.TotalProcessorTime - cpu).TotalSeconds:0.00} s, peak working set {process.PeakWorkingSet64 / 1e6:0} MB, status {result.Status}");
            Console.WriteLine($"ROWS_PER_SECOND={rows / watch.Elapsed.TotalSeconds:0}");
            if (withFocus)
            {
                foreach (var log in await services.GetRequiredService<Convergence.Core.Storage.IControlPlaneStore>().ListStepsAsync(result.PipelineLoggingId, org, CancellationToken.None))
                {
                    Console.WriteLine($"  step {log.StepId}: {log.Status}, {log.RowsProcessed} rows, {(log.EndTime - log.StartTime)?.TotalSeconds:0.00} s");
                }
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            work.Delete(recursive: true);
        }
    }

    private static string Stamp(DateTime time) => time.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "+00:00";
}
