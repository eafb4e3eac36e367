using System.Diagnostics;

namespace Convergence.IntegrationTests.Support;

/// <summary>What a run of the real executable printed and returned.</summary>
public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}{Environment.NewLine}stderr: {Stderr}{Environment.NewLine}stdout: {Stdout}";
}

/// <summary>Runs <c>dotnet Convergence.Api.dll</c> (from the test output folder) as its own process, with a pinned environment.</summary>
public static class ApiProcess
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static string ApiDll => Path.Combine(AppContext.BaseDirectory, "Convergence.Api.dll");

    /// <summary>
    /// Runs the API with <paramref name="arguments"/> in development settings on a new data folder (deleted afterwards),
    /// plus <paramref name="environment"/>; kills it and throws if it has not exited within <see cref="Timeout"/>.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        File.Exists(ApiDll).ShouldBeTrue(ApiDll);
        var dataDirectory = ConvergenceApiFactory.NewTemporaryDirectory();
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(ApiDll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("CONVERGENCE_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["ENVIRONMENT"] = "development";
        start.Environment["DISABLE_AUTH"] = "false";
        start.Environment["CONVERGENCE_DATA_DIR"] = dataDirectory;
        start.Environment["CA_ROOT_API_KEY"] = ConvergenceApiFactory.RootKey;
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0"; // should it start anyway, never on a fixed port
        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment.Remove("DOTNET_ENVIRONMENT");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start).ShouldNotBeNull();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"Convergence.Api did not exit within {Timeout.TotalSeconds} s; stdout: {await stdout}");
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(dataDirectory);
        }

        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The <c>dotnet</c> host running these tests (the SDK sets DOTNET_HOST_PATH), else the one on PATH.</summary>
    internal static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        return Environment.ProcessPath is { } current && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }
}
