using Convergence.Core.Configuration;
using Convergence.Core.Errors;
using Convergence.Core.Pipelines;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Pipelines;

public sealed class PipelineCatalogTests : IDisposable
{
    private const string DemoYaml = "pipeline_id: demo\nsteps:\n  - step_id: only\n    ps_type: demo.noop\n";

    private readonly TempDirectory _temp = new();
    private readonly string _configs;
    private readonly PipelineCatalog _catalog;

    public PipelineCatalogTests()
    {
        _configs = _temp.Combine("configs");
        _temp.WriteFile("configs/setup/demo/pipeline.yml", DemoYaml);
        _temp.WriteFile("configs/setup/demo/schemas/t.json", "{}");
        _temp.WriteFile("configs/broken/pipeline.yml", "pipeline_id: broken\n");
        _temp.WriteFile("outside.yml", DemoYaml);
        _temp.WriteFile("configs_evil/pipeline.yml", DemoYaml);
        _catalog = new PipelineCatalog(_configs);
    }

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("setup/bootstrap/pipeline")]
    [InlineData("a")]
    [InlineData("a_1/b_2")]
    [InlineData("a/b/c/d/e")]
    [InlineData("0/1")]
    [InlineData("_")]
    public void IsSafePath_WellFormedPath_ReturnsTrue(string path)
    {
        PipelineCatalog.IsSafePath(path).ShouldBeTrue();
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("../x")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("a/../b")]
    [InlineData("a/./b")]
    [InlineData("a//b")]
    [InlineData("/a/b")]
    [InlineData("a/b/")]
    [InlineData("A/b")]
    [InlineData("a/B")]
    [InlineData("a/b.yml")]
    [InlineData("a/b-c")]
    [InlineData("a b")]
    [InlineData("a/b/c/d/e/f")]
    [InlineData("a\\b")]
    [InlineData("..\\x")]
    [InlineData("a/b\n")]
    [InlineData("a/b\0")]
    [InlineData("a/é")]
    [InlineData("%2e%2e/x")]
    [InlineData("~/x")]
    [InlineData("c:/x")]
    public void IsSafePath_UnsafePath_ReturnsFalse(string? path)
    {
        PipelineCatalog.IsSafePath(path).ShouldBeFalse();
    }

    [Fact]
    public void IsSafePath_TooLong_ReturnsFalse()
    {
        PipelineCatalog.IsSafePath(new string('a', 200)).ShouldBeTrue();
        PipelineCatalog.IsSafePath(new string('a', 201)).ShouldBeFalse();
    }

    [Fact]
    public void Constructor_MissingFolder_ThrowsConfigurationError()
    {
        Should.Throw<ConfigurationErrorException>(() => new PipelineCatalog(_temp.Combine("nope")));
    }

    [Fact]
    public void Get_ExistingPipeline_ReturnsDefinition()
    {
        var pipeline = _catalog.Get("setup/demo/pipeline");

        pipeline.PipelineId.ShouldBe("demo");
        pipeline.Path.ShouldBe("setup/demo/pipeline");
        pipeline.SourceFile.ShouldBe(Path.Combine(_configs, "setup", "demo", "pipeline.yml"));
        pipeline.Steps.Single().StepId.ShouldBe("only");
    }

    [Fact]
    public void Get_SamePathTwice_ReturnsCachedDefinition()
    {
        _catalog.Get("setup/demo/pipeline").ShouldBeSameAs(_catalog.Get("setup/demo/pipeline"));
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("../configs_evil/pipeline")]
    [InlineData("setup/../../outside")]
    [InlineData("setup/demo/pipeline.yml")]
    [InlineData("/etc/passwd")]
    [InlineData("Setup/demo/pipeline")]
    [InlineData("")]
    public void Get_UnsafePath_ThrowsResourceNotFound(string path)
    {
        var ex = Should.Throw<ResourceNotFoundException>(() => _catalog.Get(path));

        ex.Resource.ShouldBe("Pipeline");
    }

    [Theory]
    [InlineData("setup/demo/missing")]
    [InlineData("setup/demo")]
    [InlineData("nothing")]
    public void Get_MissingPipeline_ThrowsResourceNotFound(string path)
    {
        Should.Throw<ResourceNotFoundException>(() => _catalog.Get(path)).Message.ShouldContain(path);
    }

    [Fact]
    public void Get_InvalidPipelineFile_ThrowsConfigurationErrorNamingTheFile()
    {
        var ex = Should.Throw<ConfigurationErrorException>(() => _catalog.Get("broken/pipeline"));

        ex.File.ShouldBe(Path.Combine(_configs, "broken", "pipeline.yml"));
        ex.Field.ShouldBe("steps");
    }

    [Fact]
    public void Get_RealConfigs_LoadsBootstrapPipeline()
    {
        var catalog = new PipelineCatalog(RepoPaths.Configs);

        catalog.Get("setup/bootstrap/pipeline").PipelineId.ShouldBe("platform-bootstrap");
        catalog.Get("setup/organizations/dryrun").PipelineId.ShouldBe("org-dryrun");
        catalog.Get("setup/organizations/onboarding").Steps.ShouldNotBeEmpty();
    }

    [Fact]
    public void ResolveFile_RelativePathInside_ReturnsFullPath()
    {
        _catalog.ResolveFile("setup/demo/schemas").ShouldBe(Path.Combine(_configs, "setup", "demo", "schemas"));
        _catalog.ResolveFile("setup/demo/schemas/t.json").ShouldBe(Path.Combine(_configs, "setup", "demo", "schemas", "t.json"));
        _catalog.ResolveFile("setup/../setup/demo").ShouldBe(Path.Combine(_configs, "setup", "demo"));
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("../outside.yml")]
    [InlineData("../configs_evil/pipeline.yml")]
    [InlineData("setup/../../outside.yml")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("/etc/passwd")]
    public void ResolveFile_PathLeavingConfigs_ThrowsConfigurationError(string relativePath)
    {
        var ex = Should.Throw<ConfigurationErrorException>(() => _catalog.ResolveFile(relativePath));

        ex.File.ShouldBe(relativePath);
        ex.Problem.ShouldContain("leaves the configs folder");
    }

    [Fact]
    public void ResolveFile_RootGivenWithTrailingSeparator_ResolvesFilesInside()
    {
        var catalog = new PipelineCatalog(_configs + Path.DirectorySeparatorChar);

        catalog.ResolveFile("setup/demo/schemas").ShouldBe(Path.Combine(_configs, "setup", "demo", "schemas"));
    }

    [Fact]
    public void ConfigsRoot_RelativeInput_IsAbsolute()
    {
        var catalog = new PipelineCatalog(Path.GetRelativePath(Environment.CurrentDirectory, _configs));

        Path.IsPathFullyQualified(catalog.ConfigsRoot).ShouldBeTrue();
        catalog.ConfigsRoot.ShouldBe(_configs);
        catalog.Get("setup/demo/pipeline").PipelineId.ShouldBe("demo");
    }
}
