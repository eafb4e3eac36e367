using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Pipelines;

public sealed class PipelineLoaderTests
{
    private const string File = "configs/demo/pipeline.yml";
    private const string ConfigPath = "demo/pipeline";

    private const string ValidYaml = """
        # a comment
        pipeline_id: demo-pipeline
        description: A demo
        schedule: "0 2 * * *"
        variables:
          region: eu
        steps:
          - step_id: extract
            ps_type: demo.extract
            description: Pull the data
            timeout_seconds: 60
            config:
              table: "{org_slug}_raw"
              options:
                mode: append
                tags: [a, "{env}"]
          - step_id: load
            ps_type: demo.load
            depends_on: [extract]
        """;

    private static PipelineDefinition Parse(string yaml) => PipelineLoader.Parse(yaml, File, ConfigPath);

    private static ConfigurationErrorException ParseFails(string yaml) =>
        Should.Throw<ConfigurationErrorException>(() => PipelineLoader.Parse(yaml, File, ConfigPath));

    [Fact]
    public void Parse_ValidPipeline_ReturnsDefinition()
    {
        var pipeline = Parse(ValidYaml);

        pipeline.Path.ShouldBe(ConfigPath);
        pipeline.SourceFile.ShouldBe(File);
        pipeline.PipelineId.ShouldBe("demo-pipeline");
        pipeline.Description.ShouldBe("A demo");
        pipeline.Schedule.ShouldBe("0 2 * * *");
        pipeline.Variables.ShouldBe(new Dictionary<string, string> { ["region"] = "eu" });
        pipeline.Steps.Select(s => s.StepId).ShouldBe(["extract", "load"]);

        var extract = pipeline.Steps[0];
        extract.PsType.ShouldBe("demo.extract");
        extract.Description.ShouldBe("Pull the data");
        extract.TimeoutSeconds.ShouldBe(60);
        extract.DependsOn.ShouldBeEmpty();
        extract.Config["table"].ShouldBe("{org_slug}_raw");
        var options = extract.Config["options"].ShouldBeAssignableTo<IDictionary<string, object?>>().ShouldNotBeNull();
        options["mode"].ShouldBe("append");
        options["tags"].ShouldBeAssignableTo<IEnumerable<object>>().ShouldNotBeNull().ShouldBe(["a", "{env}"]);

        var load = pipeline.Steps[1];
        load.DependsOn.ShouldBe(["extract"]);
        load.Config.ShouldBeEmpty();
        load.TimeoutSeconds.ShouldBeNull();
        load.Description.ShouldBeNull();
    }

    [Fact]
    public void Parse_MinimalPipeline_DefaultsOptionalFields()
    {
        var pipeline = Parse("pipeline_id: p\nsteps:\n  - step_id: only\n    ps_type: x\n");

        pipeline.Description.ShouldBeNull();
        pipeline.Schedule.ShouldBeNull();
        pipeline.Variables.ShouldBeEmpty();
        pipeline.Steps.Count.ShouldBe(1);
    }

    [Fact]
    public void Parse_UnknownStepField_ReportsLineAndFile()
    {
        var yaml = """
            pipeline_id: p
            steps:
              - step_id: a
                ps_type: x
              - id: b
                ps_type: x
            """;

        var ex = ParseFails(yaml);

        ex.Line.ShouldNotBeNull();
        ex.Line.ShouldBe(5);
        ex.File.ShouldBe(File);
        ex.Message.ShouldContain(File);
        ex.Message.ShouldContain(File + ":5");
        ex.Message.ShouldContain("'id'");
    }

    [Fact]
    public void Parse_UnknownRootField_ReportsLine()
    {
        var ex = ParseFails("pipeline_id: p\nschedul: daily\nsteps:\n  - step_id: a\n    ps_type: x\n");

        ex.Line.ShouldBe(2);
        ex.Message.ShouldContain("schedul");
    }

    [Fact]
    public void Parse_DuplicateYamlKey_ReportsLine()
    {
        var ex = ParseFails("pipeline_id: p\npipeline_id: q\nsteps:\n  - step_id: a\n    ps_type: x\n");

        ex.Line.ShouldBe(2);
    }

    [Fact]
    public void Parse_WrongValueType_ReportsLine()
    {
        var ex = ParseFails("pipeline_id: p\nsteps:\n  - step_id: a\n    ps_type: x\n    timeout_seconds: soon\n");

        ex.Line.ShouldNotBeNull();
        ex.Message.ShouldContain(File);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    public void Parse_EmptyFile_Fails(string yaml)
    {
        ParseFails(yaml).Line.ShouldBe(1);
    }

    [Theory]
    [InlineData("steps:\n  - step_id: a\n    ps_type: x\n")]
    [InlineData("pipeline_id: \"\"\nsteps:\n  - step_id: a\n    ps_type: x\n")]
    [InlineData("pipeline_id: \"  \"\nsteps:\n  - step_id: a\n    ps_type: x\n")]
    [InlineData("pipeline_id:\nsteps:\n  - step_id: a\n    ps_type: x\n")]
    public void Parse_MissingPipelineId_FieldIsPipelineId(string yaml)
    {
        var ex = ParseFails(yaml);

        ex.Field.ShouldBe("pipeline_id");
        ex.Message.ShouldContain(File);
    }

    [Theory]
    [InlineData("pipeline_id: p\n")]
    [InlineData("pipeline_id: p\nsteps:\n")]
    [InlineData("pipeline_id: p\nsteps: []\n")]
    public void Parse_NoSteps_FieldIsSteps(string yaml)
    {
        ParseFails(yaml).Field.ShouldBe("steps");
    }

    [Fact]
    public void Parse_DuplicateStepId_FieldNamesSecondStep()
    {
        var ex = ParseFails("pipeline_id: p\nsteps:\n  - step_id: a\n    ps_type: x\n  - step_id: b\n    ps_type: x\n  - step_id: a\n    ps_type: y\n");

        ex.Field.ShouldBe("steps[2].step_id");
        ex.Problem.ShouldContain("'a'");
    }

    [Fact]
    public void Parse_DependsOnUnknownStep_FieldNamesDependsOn()
    {
        var ex = ParseFails("pipeline_id: p\nsteps:\n  - step_id: a\n    ps_type: x\n  - step_id: b\n    ps_type: x\n    depends_on: [a, ghost]\n");

        ex.Field.ShouldBe("steps[1].depends_on");
        ex.Problem.ShouldContain("'ghost'");
    }

    [Fact]
    public void Parse_DependencyCycle_Fails()
    {
        var yaml = """
            pipeline_id: p
            steps:
              - step_id: a
                ps_type: x
              - step_id: b
                ps_type: x
                depends_on: [c]
              - step_id: c
                ps_type: x
                depends_on: [b]
            """;

        var ex = ParseFails(yaml);

        ex.Field.ShouldBe("steps[1].depends_on");
        ex.Problem.ShouldContain("dependency cycle: b -> c -> b");
        ex.Problem.ShouldNotContain("a ->");
    }

    [Fact]
    public void Parse_SelfDependency_Fails()
    {
        ParseFails("pipeline_id: p\nsteps:\n  - step_id: a\n    ps_type: x\n    depends_on: [a]\n").Problem.ShouldContain("cannot depend on itself");
    }

    [Theory]
    [InlineData("Extract")]
    [InlineData("extract-data")]
    [InlineData("1st_step")]
    [InlineData("step.one")]
    [InlineData("step one")]
    [InlineData("\"../x\"")]
    public void Parse_NonSnakeCaseStepId_FieldIsStepId(string stepId)
    {
        var ex = ParseFails($"pipeline_id: p\nsteps:\n  - step_id: ok\n    ps_type: x\n  - step_id: {stepId}\n    ps_type: x\n");

        ex.Field.ShouldBe("steps[1].step_id");
        ex.Problem.ShouldContain("snake_case");
    }

    [Fact]
    public void Parse_MissingStepId_FieldIsStepId()
    {
        ParseFails("pipeline_id: p\nsteps:\n  - ps_type: x\n").Field.ShouldBe("steps[0].step_id");
    }

    [Fact]
    public void Parse_MissingPsType_FieldIsPsType()
    {
        ParseFails("pipeline_id: p\nsteps:\n  - step_id: a\n").Field.ShouldBe("steps[0].ps_type");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Parse_NonPositiveTimeout_FieldIsTimeout(int timeout)
    {
        ParseFails($"pipeline_id: p\nsteps:\n  - step_id: a\n    ps_type: x\n    timeout_seconds: {timeout}\n")
            .Field.ShouldBe("steps[0].timeout_seconds");
    }

    [Fact]
    public void Parse_NullStepItem_FieldIsStep()
    {
        ParseFails("pipeline_id: p\nsteps:\n  -\n").Field.ShouldNotBeNull().ShouldStartWith("steps[0]");
    }

    [Fact]
    public void LoadFile_MissingFile_ThrowsConfigurationError()
    {
        using var temp = new TempDirectory();
        var missing = temp.Combine("none.yml");

        var ex = Should.Throw<ConfigurationErrorException>(() => PipelineLoader.LoadFile(missing, "none"));

        ex.File.ShouldBe(missing);
    }

    [Fact]
    public void LoadFile_RealBootstrapPipeline_Parses()
    {
        var file = Path.Combine(RepoPaths.Configs, "setup", "bootstrap", "pipeline.yml");

        var pipeline = PipelineLoader.LoadFile(file, "setup/bootstrap/pipeline");

        pipeline.PipelineId.ShouldBe("platform-bootstrap");
        pipeline.Steps.ShouldNotBeEmpty();
    }

    [Fact]
    public void StepOrder_Resolve_OrdersByDependsOn()
    {
        var yaml = """
            pipeline_id: p
            steps:
              - step_id: report
                ps_type: x
                depends_on: [transform, audit]
              - step_id: transform
                ps_type: x
                depends_on: [extract]
              - step_id: audit
                ps_type: x
              - step_id: extract
                ps_type: x
            """;
        var pipeline = Parse(yaml);

        var order = StepOrder.Resolve(pipeline).Select(s => s.StepId).ToList();

        order.ShouldBe(["audit", "extract", "transform", "report"]);
        foreach (var step in pipeline.Steps)
        {
            foreach (var dependency in step.DependsOn)
            {
                order.IndexOf(dependency).ShouldBeLessThan(order.IndexOf(step.StepId));
            }
        }
    }

    [Fact]
    public void StepOrder_Resolve_IndependentStepsKeepFileOrder()
    {
        var pipeline = Parse("pipeline_id: p\nsteps:\n  - step_id: c\n    ps_type: x\n  - step_id: a\n    ps_type: x\n  - step_id: b\n    ps_type: x\n");

        StepOrder.Resolve(pipeline).Select(s => s.StepId).ShouldBe(["c", "a", "b"]);
    }

    [Fact]
    public void StepOrder_Resolve_CycleInHandBuiltDefinition_ThrowsNamingSourceFile()
    {
        var pipeline = new PipelineDefinition(
            ConfigPath,
            File,
            "p",
            null,
            null,
            new Dictionary<string, string>(),
            [
                new StepDefinition("a", "x", null, ["b"], new Dictionary<string, object?>(), null, RetryPolicy.None, null, [], 1),
                new StepDefinition("b", "x", null, ["a"], new Dictionary<string, object?>(), null, RetryPolicy.None, null, [], 2),
            ],
            NotificationSettings.None,
            PipelineDefinition.DefaultMaxDateRangeDays,
            new HashSet<string>());

        var ex = Should.Throw<ConfigurationErrorException>(() => StepOrder.Resolve(pipeline));

        ex.File.ShouldBe(File);
        ex.Field.ShouldBe("depends_on");
    }
}
