using System.Diagnostics;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Configuration;

/// <summary>The real executable refuses unsafe production settings: exit code 2, the reason on stderr.</summary>
public sealed class ProcessStartupTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Main_ProductionWithDisableAuth_ExitsWithCode2AndNamesTheSetting()
    {
        var apiDll = Path.Combine(AppContext.BaseDirectory, "Convergence.Api.dll");
        File.Exists(apiDll).ShouldBeTrue(apiDll);
        var dataDirectory = ConvergenceApiFactory.NewTemporaryDirectory();
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(apiDll);

        // Everything else is safe, so DISABLE_AUTH is the only reason to refuse.
        start.Environment["ENVIRONMENT"] = "production";
        start.Environment["DISABLE_AUTH"] = "true";
        start.Environment["CONVERGENCE_DATA_DIR"] = dataDirectory;
        start.Environment["CA_ROOT_API_KEY"] = ConvergenceApiFactory.RootKey;
        start.Environment["CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION"] = "true";
        start.Environment["RATE_LIMIT_ENABLED"] = "true";
        start.Environment["CORS_ORIGINS"] = string.Empty;
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0"; // should it start anyway, never on a fixed port
        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment.Remove("DOTNET_ENVIRONMENT");

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

        var error = await stderr;
        process.ExitCode.ShouldBe(2, $"stderr: {error}{Environment.NewLine}stdout: {await stdout}");
        error.ShouldContain("DISABLE_AUTH");
        error.ShouldNotContain("CA_ROOT_API_KEY", Case.Sensitive, "only the unsafe setting is reported");
        error.ShouldNotContain(ConvergenceApiFactory.RootKey);
    }

    /// <summary>The <c>dotnet</c> host running these tests (the SDK sets DOTNET_HOST_PATH), else the one on PATH.</summary>
    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        return Environment.ProcessPath is { } current && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }
}
