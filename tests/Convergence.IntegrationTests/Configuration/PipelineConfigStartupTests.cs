using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Configuration;

/// <summary>
/// A broken pipeline config under configs/ stops the service at startup (exit code 2, every error named), and the
/// <c>validate</c> command checks files on demand (exit code 1 when one is invalid).
/// </summary>
public sealed class PipelineConfigStartupTests
{
    /// <summary>Line 5 has a misspelt field.</summary>
    private const string Broken = """
        pipeline_id: broken
        steps:
          - step_id: one
            ps_type: flow.noop
            timeout_secs: 10
        """;

    /// <summary>Line 4 names a processor that does not exist.</summary>
    private const string AlsoBroken = """
        pipeline_id: also_broken
        steps:
          - step_id: one
            ps_type: gcp.no_such_processor
        """;

    [Fact]
    public async Task Factory_BrokenConfigUnderConfigs_RefusesToStart()
    {
        await using var factory = new ConvergenceApiFactory
        {
            ConfigFiles = new Dictionary<string, string>(TestPipelines.Files) { ["testing/broken.yml"] = Broken },
            ConfigureServices = services => services.AddTestProcessors(new PipelineProbe()),
        };

        // Program builds the host, finds the broken config and returns without running it: the test server never
        // starts. (What it printed goes to the process's stderr; Main_BrokenShippedConfig_… checks that text.)
        var ex = Should.Throw<InvalidOperationException>(() => factory.CreateClient());
        ex.Message.ShouldContain("server has not been started");
    }

    [Fact]
    public async Task Factory_SameConfigsWithoutTheBrokenFile_Starts()
    {
        await using var factory = new ConvergenceApiFactory
        {
            ConfigFiles = TestPipelines.Files,
            ConfigureServices = services => services.AddTestProcessors(new PipelineProbe()),
        };

        using var client = factory.CreateClient();
        using var response = await client.GetAsync("/health");
        ((int)response.StatusCode).ShouldBe(200);
    }

    [Fact]
    public async Task Main_BrokenShippedConfig_ExitsWithCode2NamingFileLineAndField()
    {
        var configs = TestConfigs.WriteCopy(ConvergenceApiFactory.NewTemporaryDirectory(), new Dictionary<string, string>
        {
            ["testing/broken.yml"] = Broken,
            ["testing/also_broken.yml"] = AlsoBroken,
        });
        try
        {
            var result = await ApiProcess.RunAsync([], new Dictionary<string, string> { ["CONVERGENCE_CONFIGS_DIR"] = configs });

            result.ExitCode.ShouldBe(2, result.ToString());
            result.Stderr.ShouldContain("2 invalid pipeline config(s)", Case.Sensitive, result.ToString());
            result.Stderr.ShouldContain($"{Path.Combine(configs, "testing", "broken.yml")}:5 (steps[0].timeout_secs)", Case.Sensitive, result.ToString());
            result.Stderr.ShouldContain("timeout_seconds");
            result.Stderr.ShouldContain($"{Path.Combine(configs, "testing", "also_broken.yml")}:4 (steps[0].ps_type)", Case.Sensitive, result.ToString());
            result.Stderr.ShouldContain("gcp.no_such_processor");
            result.Stdout.ShouldNotContain("Now listening", Case.Sensitive, "it must not start serving");
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(configs);
        }
    }

    [Fact]
    public async Task Validate_BrokenFile_ExitsWithCode1NamingFileAndLine()
    {
        var folder = ConvergenceApiFactory.NewTemporaryDirectory();
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, "broken.yml");
        await File.WriteAllTextAsync(file, Broken);
        try
        {
            var result = await ApiProcess.RunAsync(["validate", file]);

            result.ExitCode.ShouldBe(1, result.ToString());
            result.Stderr.ShouldContain($"{file}:5 (steps[0].timeout_secs)", Case.Sensitive, result.ToString());
            result.Stderr.ShouldContain("did you mean 'timeout_seconds'");
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(folder);
        }
    }

    [Fact]
    public async Task Validate_ValidFile_ExitsWithCode0()
    {
        var file = Path.Combine(TestConfigs.RepositoryConfigs, "gcp", "example", "dryrun.yml");

        var result = await ApiProcess.RunAsync(["validate", file]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Stdout.ShouldContain($"{file}: valid", Case.Sensitive, result.ToString());
        result.Stderr.ShouldBeEmpty(result.ToString());
    }

    [Fact]
    public async Task Validate_ValidAndBrokenFiles_ExitsWithCode1ReportingEach()
    {
        var folder = ConvergenceApiFactory.NewTemporaryDirectory();
        Directory.CreateDirectory(folder);
        var broken = Path.Combine(folder, "also_broken.yml");
        await File.WriteAllTextAsync(broken, AlsoBroken);
        var valid = Path.Combine(TestConfigs.RepositoryConfigs, "gcp", "example", "dryrun.yml");
        var missing = Path.Combine(folder, "missing.yml");
        try
        {
            var result = await ApiProcess.RunAsync(["validate", valid, broken, missing]);

            result.ExitCode.ShouldBe(1, result.ToString());
            result.Stdout.ShouldContain($"{valid}: valid");
            result.Stderr.ShouldContain($"{broken}:4 (steps[0].ps_type)");
            result.Stderr.ShouldContain(missing);
        }
        finally
        {
            ConvergenceApiFactory.DeleteDirectory(folder);
        }
    }

    [Fact]
    public async Task Validate_NoFiles_ChecksEveryShippedConfigAndExitsWithCode0()
    {
        var result = await ApiProcess.RunAsync(["validate"]);

        result.ExitCode.ShouldBe(0, result.ToString());
        result.Stdout.ShouldContain("pipelines under");
        result.Stdout.ShouldContain("are valid");
    }
}
