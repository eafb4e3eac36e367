using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A real service instance: <c>dotnet Convergence.Api.dll</c> serving on a free loopback port, on a data folder that
/// several instances may share. <see cref="Kill"/> is SIGKILL (no shutdown hooks run), as a crashed machine would.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stdout;
    private readonly Task<string> _stderr;

    private ServiceProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public Uri BaseAddress { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts an instance on <paramref name="dataDirectory"/> with <paramref name="environment"/> and waits until /health answers.</summary>
    public static async Task<ServiceProcess> StartAsync(string dataDirectory, IReadOnlyDictionary<string, string> environment)
    {
        var port = FreePort();
        var start = new ProcessStartInfo(ApiProcess.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(ApiProcess.ApiDll);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CONVERGENCE_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["ENVIRONMENT"] = "development";
        start.Environment["DISABLE_AUTH"] = "false";
        start.Environment["RATE_LIMIT_ENABLED"] = "false";
        start.Environment["CONVERGENCE_DATA_DIR"] = dataDirectory;
        start.Environment["CA_ROOT_API_KEY"] = ConvergenceApiFactory.RootKey;
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment.Remove("DOTNET_ENVIRONMENT");
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var instance = new ServiceProcess(Process.Start(start)!, new Uri($"http://127.0.0.1:{port}/"));
        await instance.WaitHealthyAsync();
        return instance;
    }

    public HttpClient Client(string? apiKey = null, bool root = false)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (root)
        {
            client.DefaultRequestHeaders.Add(ConvergenceApiFactory.RootKeyHeader, ConvergenceApiFactory.RootKey);
        }

        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Add(ConvergenceApiFactory.ApiKeyHeader, apiKey);
        }

        return client;
    }

    /// <summary>SIGKILL: the process gets no chance to release its leases or finish its runs.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>What the instance printed so far (after it exited: everything).</summary>
    public string Output => _process.HasExited ? $"{_stdout.Result}{_stderr.Result}" : "(running)";

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private async Task WaitHealthyAsync()
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < ApiProcess.Timeout)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The service exited with {_process.ExitCode}: {await _stderr}{await _stdout}");
            }

            try
            {
                using var response = await client.GetAsync("health");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Not answering yet.
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"The service did not answer /health within {ApiProcess.Timeout.TotalSeconds} s.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
