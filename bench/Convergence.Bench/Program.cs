using System.Diagnostics;
using Convergence.Api.Configuration;
using Convergence.Api.Extensions;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Orchestration overhead: a no-op 5-step pipeline run end to end through the real executor on SQLite (every run,
// step and state change recorded), sequentially and with parallel callers. Usage:
//   dotnet run -c Release --project bench/Convergence.Bench -- [runs=2000] [parallel=4]
// LLM pricing throughput (PricingBench.cs):
//   dotnet run -c Release --project bench/Convergence.Bench -- pricing [rows=1000000] [rounds=5]
// GCP billing export ingest (GcpBench.cs; bench/gcp/run.sh compares with sqlite3 .import):
//   dotnet run -c Release --project bench/Convergence.Bench -- gcp-generate 1000000 /tmp/gcp.csv
//   dotnet run -c Release --project bench/Convergence.Bench -- gcp-ingest /tmp/gcp.csv ["Host=...;Database=..." for a PostgreSQL warehouse, or sqlite] [loads: 2 = measure a re-load into the filled table]
//   dotnet run -c Release --project bench/Convergence.Bench -- gcp-pipeline /tmp/gcp.csv [...]   (the same with gcp/billing's focus step, each step timed)
// Scheduler trigger and run queue (SchedulerBench.cs, issue #6):
//   dotnet run -c Release --project bench/Convergence.Bench -- trigger [orgs=10000] [schedules=3]
//   dotnet run -c Release --project bench/Convergence.Bench -- queue [runs=2000] [workers=4] [instances=1] [sqlite|postgres]
//   dotnet run -c Release --project bench/Convergence.Bench -- queue-processes [runs=2000] [workers=4] [instances=2] [rounds=2]   (PostgreSQL, real service processes)
if (args is ["trigger", .. var triggerArgs])
{
    await SchedulerBench.TriggerAsync(triggerArgs, CopyConfigs);
    return;
}

if (args is ["queue-processes", .. var processArgs])
{
    await SchedulerBench.QueueProcessesAsync(processArgs, CopyConfigs);
    return;
}

if (args is ["queue", .. var queueArgs])
{
    await SchedulerBench.QueueAsync(queueArgs, CopyConfigs);
    return;
}

if (args is ["gcp-generate", .. var generateArgs])
{
    GcpBench.Generate(generateArgs);
    return;
}

if (args is ["gcp-parse", .. var parseArgs])
{
    GcpBench.Parse(parseArgs);
    return;
}

if (args is ["gcp-pipeline", .. var pipelineArgs])
{
    await GcpBench.IngestAsync(pipelineArgs, RepositoryConfigs(), withFocus: true);
    return;
}

if (args is ["gcp-ingest", .. var ingestArgs])
{
    await GcpBench.IngestAsync(ingestArgs, RepositoryConfigs());
    return;
}

if (args is ["pricing", .. var pricingArgs])
{
    PricingBench.Run(pricingArgs, RepositoryConfigs());
    return;
}

var runs = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 2000;
var parallel = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 4;

var work = Directory.CreateTempSubdirectory("convergence-bench-");
try
{
    var configs = CopyConfigs(work.FullName);
    var settings = ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["CONVERGENCE_DATA_DIR"] = Path.Combine(work.FullName, "data"),
        ["CONVERGENCE_CONFIGS_DIR"] = configs,
        ["CA_ROOT_API_KEY"] = new string('b', 40),
    }).Build());
    var services = new ServiceCollection().AddLogging(b => b.SetMinimumLevel(LogLevel.Warning)).AddConvergenceCore(settings).BuildServiceProvider();
    var executor = services.GetRequiredService<PipelineExecutor>();
    var store = services.GetRequiredService<IControlPlaneStore>();
    var actor = Actor.System("bench");

    await executor.RunAsync(new PipelineRunRequest("setup/bootstrap/pipeline", null, new Dictionary<string, string>(), actor, RunTrigger.Admin), CancellationToken.None);
    var orgs = Enumerable.Range(0, parallel).Select(i => OrgSlug.From($"bench_org_{i}")).ToList();
    foreach (var org in orgs)
    {
        await executor.RunAsync(new PipelineRunRequest("setup/organizations/onboarding", org, new Dictionary<string, string>
        {
            ["org_slug"] = org.Value, ["company_name"] = "Bench", ["admin_email"] = "bench@example.com", ["subscription_plan"] = "SCALE",
        }, actor, RunTrigger.Admin), CancellationToken.None);
    }

    Task Run(OrgSlug org) => executor.RunAsync(new PipelineRunRequest("bench/noop5", org, new Dictionary<string, string> { ["date"] = "2025-11-20" }, actor, RunTrigger.Api), CancellationToken.None);

    for (var i = 0; i < 200; i++)
    {
        await Run(orgs[0]); // warm-up: JIT, connection pools
    }

    var sequential = Stopwatch.StartNew();
    for (var i = 0; i < runs; i++)
    {
        await Run(orgs[0]);
    }

    sequential.Stop();
    var concurrent = Stopwatch.StartNew();
    await Task.WhenAll(orgs.Select(async org =>
    {
        for (var i = 0; i < runs / parallel; i++)
        {
            await Run(org);
        }
    }));
    concurrent.Stop();

    var recorded = await store.ListRunsAsync(new RunQuery(orgs[0], RunStatus.Completed, "bench/noop5", null, 1, null), CancellationToken.None);
    Console.WriteLine($"no-op 5-step pipeline through the executor on SQLite ({runs} runs each way; every run, step and state change recorded)");
    Console.WriteLine($"  sequential: {runs / sequential.Elapsed.TotalSeconds,8:0} runs/s   {sequential.Elapsed.TotalMilliseconds / runs,6:0.00} ms per run (goal <= 5 ms)");
    Console.WriteLine($"  {parallel} parallel: {runs / parallel * parallel / concurrent.Elapsed.TotalSeconds,8:0} runs/s   {concurrent.Elapsed.TotalMilliseconds / (runs / parallel),6:0.00} ms per run per caller");
    Console.WriteLine($"  last run recorded: {(recorded.Runs.Count == 1 ? recorded.Runs[0].Status : "missing")}");
}
finally
{
    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    work.Delete(recursive: true);
}

static string RepositoryConfigs()
{
    var repo = new DirectoryInfo(AppContext.BaseDirectory);
    while (repo is not null && !File.Exists(Path.Combine(repo.FullName, "Convergence.slnx")))
    {
        repo = repo.Parent;
    }

    return Path.Combine(repo?.FullName ?? throw new InvalidOperationException("Run from inside the repository."), "configs");
}

static string CopyConfigs(string work)
{
    var source = RepositoryConfigs();
    var target = Path.Combine(work, "configs");
    foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
    {
        var destination = Path.Combine(target, Path.GetRelativePath(source, file));
        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        File.Copy(file, destination);
    }

    Directory.CreateDirectory(Path.Combine(target, "bench"));
    File.WriteAllText(Path.Combine(target, "bench", "noop5.yml"), """
        pipeline_id: "{org_slug}-bench-noop5"
        description: Five no-op steps in a diamond, to measure orchestration alone
        steps:
          - { step_id: start, ps_type: flow.noop }
          - { step_id: left, ps_type: flow.noop, depends_on: [start] }
          - { step_id: right, ps_type: flow.noop, depends_on: [start] }
          - { step_id: join, ps_type: flow.noop, depends_on: [left, right] }
          - { step_id: finish, ps_type: flow.noop, depends_on: [join] }
        """);
    File.WriteAllText(Path.Combine(target, "bench", "noop1.yml"), """
        pipeline_id: "{org_slug}-bench-noop1"
        description: One no-op step, to measure the scheduler and the run queue alone
        steps:
          - { step_id: only, ps_type: flow.noop }
        """);
    return target;
}
