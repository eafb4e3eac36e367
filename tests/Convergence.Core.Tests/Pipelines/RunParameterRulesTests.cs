using Convergence.Core.Pipelines;

namespace Convergence.Core.Tests.Pipelines;

public sealed class RunParameterRulesTests
{
    private static readonly PipelineDefinition Pipeline = new(
        "acme/billing",
        "acme/billing.yml",
        "p",
        null,
        null,
        new Dictionary<string, string> { ["bucket"] = "b" },
        [],
        NotificationSettings.None,
        PipelineDefinition.DefaultMaxDateRangeDays,
        new HashSet<string>(StringComparer.Ordinal) { "source_uri" });

    [Fact]
    public void UnknownParameters_DateSliceVariablesAndDeclared_AreAllAccepted()
    {
        RunParameterRules.UnknownParameters(Pipeline, ["date", "start_date", "end_date", "bucket", "source_uri"]).ShouldBeEmpty();
    }

    [Fact]
    public void UnknownParameters_OtherNames_AreReportedWithWhatThePipelineTakes()
    {
        var unknown = RunParameterRules.UnknownParameters(Pipeline, ["date", "org_slug", "Bucket"]);

        unknown.Keys.ShouldBe(["Bucket", "org_slug"], ignoreOrder: true, customMessage: "built-in placeholders other than the date slice are not run parameters; names are case-sensitive");
        unknown["org_slug"].ShouldBe(["'org_slug' is not a parameter of acme/billing; it takes date, or start_date and end_date, source_uri."]);
    }
}
