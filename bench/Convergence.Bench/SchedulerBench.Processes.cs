using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Convergence.Api.Pipelines;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;
using Convergence.Storage.Postgres;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

/// <summary>
/// <c>queue-processes runs workers instances rounds</c>: the run queue on PostgreSQL drained by real service processes
/// (<c>dotnet Convergence.Api.dll</c>, each with workers/instances worker slots), as a deployment of several instances
/// runs it. The bench process prepares a fresh database (bootstrap, 100 SCALE orgs) and starts the instances; each round
/// it admits the no-op runs through <c>PipelineRunService.SubmitAsync</c> while every org's concurrent limit is held at
/// 0 (so no instance claims yet), then releases the limit and wakes the instances (<c>NOTIFY</c>) in one batch and times
/// until no entry is QUEUED, CLAIMED or RUNNING. Round 1 runs on freshly started processes (their code not yet
/// compiled), later rounds on the same processes, warm. Every entry and run row must end COMPLETED.
/// </summary>
internal static partial class SchedulerBench
{
    public static async Task QueueProcessesAsync(string[] args, Func<string, string> copyConfigs)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 2000;
        var workers = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 4;
        var instances = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        var rounds = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2;
        if (workers % instances != 0 || runs * rounds / QueueOrgs > SubscriptionPlan.Scale.DailyLimit)
        {
            throw new ArgumentException(
                $"queue-processes [runs] [workers] [instances] [rounds]: workers must split evenly over the instances, and runs × rounds may be at most {SubscriptionPlan.Scale.DailyLimit * QueueOrgs} (the {QueueOrgs} SCALE orgs' daily limit).");
        }

        var database = FreshPostgresDatabase();
        await using var bench = await BenchApp.StartAsync(copyConfigs, workers: 1, database);
        var orgs = await bench.CreateOrgsAsync(QueueOrgs);
        await HoldAsync(database, hold: true);
        var processes = new List<ServiceInstance>();
        try
        {
            for (var i = 0; i < instances; i++)
            {
                processes.Add(await ServiceInstance.StartAsync(bench.Settings.ConfigsDirectory, database, bench.Settings.RootApiKey!, workers / instances));
            }

            Console.WriteLine($"[postgres] {instances} service processes (dotnet Convergence.Api.dll), {workers / instances} worker slots each, on one database");
            var submit = bench.Services.GetRequiredService<PipelineRunService>();
            var actor = Actor.System("bench");
            for (var round = 1; round <= rounds; round++)
            {
                for (var i = 0; i < runs; i++)
                {
                    await submit.SubmitAsync(orgs[i % orgs.Count], NoopPipeline, new Dictionary<string, string>(), actor, null, CancellationToken.None);
                }

                var cpu = CpuSeconds(processes);
                var drain = Stopwatch.StartNew();
                await HoldAsync(database, hold: false);
                while (await bench.CountAsync("SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE status IN ('QUEUED', 'CLAIMED', 'RUNNING')") is [> 0])
                {
                    if (processes.FirstOrDefault(p => p.HasExited) is { } exited)
                    {
                        throw new InvalidOperationException($"A service process exited during the drain: {exited.Output()}");
                    }

                    await Task.Delay(20);
                }

                drain.Stop();
                var used = CpuSeconds(processes);
                await HoldAsync(database, hold: true);
                var done = await bench.CountAsync(
                    "SELECT COUNT(*) FROM org_pipeline_execution_queue WHERE status = 'COMPLETED'",
                    $"SELECT COUNT(*) FROM org_meta_pipeline_runs WHERE status = 'COMPLETED' AND pipeline_path = '{NoopPipeline}'");
                var label = round == 1 ? "round 1 (cold processes)" : $"round {round} (warm processes)";
                Console.WriteLine(
                    $"{label}: worker pools, {workers} workers over {instances} processes: {runs} runs in {drain.Elapsed.TotalSeconds:0.00} s   {runs / drain.Elapsed.TotalSeconds:0} runs/s   (entries COMPLETED {done[0]}, run rows COMPLETED {done[1]})");
                Console.WriteLine(
                    $"    CPU during the drain: service processes {used.Services - cpu.Services:0.00} s, PostgreSQL processes {used.Postgres - cpu.Postgres:0.00} s, this process {used.Bench - cpu.Bench:0.00} s " +
                    $"({Environment.ProcessorCount} cores × {drain.Elapsed.TotalSeconds:0.00} s = {Environment.ProcessorCount * drain.Elapsed.TotalSeconds:0.00} s available; " +
                    $"{(used.Services - cpu.Services) * 1000 / runs:0.00} ms service and {(used.Postgres - cpu.Postgres) * 1000 / runs:0.00} ms PostgreSQL CPU a run)");
                if (done[0] != (long)runs * round || done[1] != (long)runs * round)
                {
                    throw new InvalidOperationException($"Expected {runs * round} COMPLETED entries and runs.");
                }
            }
        }
        finally
        {
            foreach (var process in processes)
            {
                process.Dispose();
            }
        }
    }

    /// <summary>
    /// CPU seconds used so far by the service processes, by every <c>postgres</c> process of this machine (the server's
    /// backends included; zero where <c>/proc</c> is not readable) and by this process.
    /// </summary>
    private static (double Services, double Postgres, double Bench) CpuSeconds(IReadOnlyList<ServiceInstance> services)
    {
        double postgres = 0;
        if (Directory.Exists("/proc"))
        {
            foreach (var directory in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(directory), out var pid) && ProcessCpuSeconds(pid, "postgres") is { } seconds)
                {
                    postgres += seconds;
                }
            }
        }

        return (services.Sum(s => s.CpuSeconds), postgres, Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds);
    }

    /// <summary>A process's user + system CPU seconds from <c>/proc/{pid}/stat</c> when its command name is <paramref name="name"/>.</summary>
    private static double? ProcessCpuSeconds(int pid, string name)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var open = stat.IndexOf('(', StringComparison.Ordinal);
            var close = stat.LastIndexOf(')');
            if (stat[(open + 1)..close] != name)
            {
                return null;
            }

            // After the command: state, then fields 4.. of proc(5); utime and stime are fields 14 and 15, in clock ticks (100 a second on Linux).
            var fields = stat[(close + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>
    /// Holds every org's concurrent limit at 0 (no instance can claim), or releases it to the plan's limit and wakes the
    /// instances on the queue's notification channel, in one batch.
    /// </summary>
    private static async Task HoldAsync(string database, bool hold)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(database) { SearchPath = DatasetRef.CentralName }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            hold
                ? "UPDATE org_subscriptions SET concurrent_limit = 0"
                : $"UPDATE org_subscriptions SET concurrent_limit = {SubscriptionPlan.Scale.ConcurrentLimit}; SELECT pg_notify('{PostgresRunQueueBroadcast.Channel}', 'bench')",
            connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>One service instance: <c>dotnet Convergence.Api.dll</c> from this bench's output folder, on a free loopback port.</summary>
    private sealed class ServiceInstance : IDisposable
    {
        private readonly Process _process;
        private readonly System.Text.StringBuilder _output = new();

        private ServiceInstance(Process process)
        {
            _process = process;
            _process.OutputDataReceived += (_, e) => Append(e.Data);
            _process.ErrorDataReceived += (_, e) => Append(e.Data);
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public bool HasExited => _process.HasExited;

        public double CpuSeconds
        {
            get
            {
                _process.Refresh();
                return _process.TotalProcessorTime.TotalSeconds;
            }
        }

        public static async Task<ServiceInstance> StartAsync(string configs, string database, string rootKey, int workers)
        {
            var port = FreePort();
            var start = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = AppContext.BaseDirectory,
            };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Convergence.Api.dll"));
            foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CONVERGENCE_", StringComparison.Ordinal)).ToList())
            {
                start.Environment.Remove(name);
            }

            var data = Directory.CreateTempSubdirectory("convergence-bench-instance-").FullName;
            start.Environment["ENVIRONMENT"] = "development";
            start.Environment["RATE_LIMIT_ENABLED"] = "false";
            start.Environment["CA_ROOT_API_KEY"] = rootKey;
            start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
            start.Environment["Logging__LogLevel__Default"] = "Warning";
            start.Environment["CONVERGENCE_DATA_DIR"] = data;
            start.Environment["CONVERGENCE_CONFIGS_DIR"] = configs;
            start.Environment["CONVERGENCE_STORE"] = "postgres";
            start.Environment["CONVERGENCE_STORE_CONNECTION"] = database;
            start.Environment["CONVERGENCE_SCHEDULER"] = "external";
            start.Environment["CONVERGENCE_PIPELINE_WORKERS"] = workers.ToString(CultureInfo.InvariantCulture);
            start.Environment["CONVERGENCE_QUEUE_POLL_SECONDS"] = "1";
            var instance = new ServiceInstance(Process.Start(start)!);
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(5) };
            var waited = Stopwatch.StartNew();
            while (true)
            {
                if (instance.HasExited)
                {
                    throw new InvalidOperationException($"The service process exited at start: {instance.Output()}");
                }

                try
                {
                    using var response = await client.GetAsync("health/ready");
                    if (response.IsSuccessStatusCode)
                    {
                        return instance;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }

                if (waited.Elapsed > TimeSpan.FromSeconds(60))
                {
                    instance.Dispose();
                    throw new TimeoutException($"The service process was not ready within 60 s: {instance.Output()}");
                }

                await Task.Delay(100);
            }
        }

        public string Output()
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }

            _process.Dispose();
        }

        private void Append(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_output)
            {
                _output.AppendLine(line);
            }
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }
}
