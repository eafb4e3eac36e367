using System.Net;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>POST /api/v1/pipelines/validate: a YAML body checked like a shipped config, never run or stored.</summary>
public sealed class ValidateEndpointTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string Route = "/api/v1/pipelines/validate";

    private const string Valid = """
        pipeline_id: "{org_slug}-my-pipeline"
        steps:
          - step_id: write
            ps_type: gcp.bq_etl
            destination: { table: onboarding_validation_test, write_mode: merge_partition, partition_column: run_date }
            config:
              query: SELECT {date} AS run_date
          - step_id: done
            ps_type: flow.noop
            depends_on: [write]
        """;

    private PipelineHarness Api => fixture.Harness;

    [Theory]
    [InlineData("text/yaml")]
    [InlineData("application/yaml")]
    [InlineData("text/plain")]
    public async Task Validate_ValidYaml_Is200Valid(string mediaType)
    {
        var org = await Api.OnboardAsync("validate");
        using var client = Api.Factory.OrgClient(org.ApiKey);
        var runsBefore = Api.Factory.ControlPlane().Count("org_meta_pipeline_runs");

        using var response = await client.PostRawAsync(Route, Valid, mediaType);

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("valid").GetBoolean().ShouldBeTrue();
        body.Str("pipeline_id").ShouldBe("{org_slug}-my-pipeline");
        body.GetProperty("steps").EnumerateArray().Select(s => s.GetString()).ShouldBe(["write", "done"]);
        Api.Factory.ControlPlane().Count("org_meta_pipeline_runs").ShouldBe(runsBefore, "validation runs nothing");
    }

    [Fact]
    public async Task Validate_RepositoryExamplePipeline_Is200()
    {
        using var client = Api.Factory.RootClient();
        var yaml = await File.ReadAllTextAsync(Path.Combine(TestConfigs.RepositoryConfigs, "gcp", "example", "dryrun.yml"));

        using var response = await client.PostRawAsync($"{Route}?path=gcp/example/dryrun", yaml, "text/yaml");

        var body = await response.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.GetProperty("valid").GetBoolean().ShouldBeTrue();
        body.Str("pipeline").ShouldBe("gcp/example/dryrun");
    }

    [Theory]
    [InlineData("unknown_field", 5L, "steps[0].timeout_secs", "timeout_seconds")]
    [InlineData("unknown_ps_type", 4L, "steps[0].ps_type", "no.such.type")]
    [InlineData("bad_write_mode", 5L, "steps[0].destination.write_mode", "WRITE_APPEND")]
    [InlineData("unknown_table", 5L, "steps[0].destination.table", "no_such_table")]
    [InlineData("bad_placeholder", 1L, "pipeline_id", "{nope}")]
    [InlineData("cycle", 5L, "steps[0].depends_on", "dependency cycle: a -> b -> a")]
    [InlineData("bad_yaml", 4L, null, "invalid YAML")]
    public async Task Validate_InvalidYaml_Is422WithFileLineAndField(string @case, long line, string? field, string mentions)
    {
        var org = await Api.OnboardAsync("validate");
        using var client = Api.Factory.OrgClient(org.ApiKey);

        using var response = await client.PostRawAsync(Route, Invalid[@case], "text/yaml");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.Str("title").ShouldBe("Invalid pipeline configuration");
        problem.Json.Str("file").ShouldBe("request body");
        problem.Json.GetProperty("line").GetInt64().ShouldBe(line, problem.Text);

        if (field is null)
        {
            problem.Json.TryGetProperty("field", out _).ShouldBeTrue(problem.Text);
        }
        else
        {
            problem.Json.Str("field").ShouldBe(field, problem.Text);
        }

        problem.Json.Str("detail").ShouldContain(mentions, Case.Sensitive, problem.Text);
    }

    [Fact]
    public async Task Validate_WithoutKey_Is401()
    {
        using var client = Api.Factory.AnonymousClient();

        using var response = await client.PostRawAsync(Route, Valid, "text/yaml");

        await response.ShouldBeProblemAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Validate_UnsafePath_Is422()
    {
        using var client = Api.Factory.RootClient();

        using var response = await client.PostRawAsync($"{Route}?path=..%2Fsetup", Valid, "text/yaml");

        var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
        problem.Json.GetProperty("errors").TryGetProperty("path", out _).ShouldBeTrue(problem.Text);
    }

    private static readonly Dictionary<string, string> Invalid = new(StringComparer.Ordinal)
    {
        ["unknown_field"] = """
            pipeline_id: p
            steps:
              - step_id: one
                ps_type: flow.noop
                timeout_secs: 10
            """,
        ["unknown_ps_type"] = """
            pipeline_id: p
            steps:
              - step_id: one
                ps_type: no.such.type
            """,
        ["bad_write_mode"] = """
            pipeline_id: p
            steps:
              - step_id: one
                ps_type: gcp.bq_etl
                destination: { table: onboarding_validation_test, write_mode: WRITE_APPEND }
            """,
        ["unknown_table"] = """
            pipeline_id: p
            steps:
              - step_id: one
                ps_type: gcp.bq_etl
                destination: { table: no_such_table, write_mode: append }
            """,
        ["bad_placeholder"] = """
            pipeline_id: "{nope}-p"
            steps:
              - step_id: one
                ps_type: flow.noop
            """,
        ["cycle"] = """
            pipeline_id: p
            steps:
              - step_id: a
                ps_type: flow.noop
                depends_on: [b]
              - step_id: b
                ps_type: flow.noop
                depends_on: [a]
            """,
        // A tab indents line 4.
        ["bad_yaml"] = "pipeline_id: p\nsteps:\n  - step_id: one\n\tps_type: flow.noop\n",
    };
}
