using System.Globalization;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;

namespace Convergence.Core.Pipelines;

/// <summary>Everything a step sees of its run.</summary>
public sealed class StepContext
{
    public StepContext(RunContext run, StepDefinition step, IReadOnlyDictionary<string, object?> config)
    {
        Run = run;
        Step = step;
        Config = config;
    }

    public RunContext Run { get; }

    public StepDefinition Step { get; }

    /// <summary>The step's <c>config</c> with placeholders resolved.</summary>
    public IReadOnlyDictionary<string, object?> Config { get; }

    public string RequireConfigString(string key) =>
        Config.TryGetValue(key, out var value) && value is string s && s.Length > 0
            ? s
            : throw new InvalidOperationException($"Step '{Step.StepId}' ({Step.PsType}) needs config.{key}.");

    /// <summary>A run parameter, or <c>null</c> when it was not given.</summary>
    public string? Parameter(string name) => Run.Parameters.TryGetValue(name, out var v) ? v : null;

    /// <summary>A boolean run parameter; anything but true/false is a 422 naming the parameter.</summary>
    public bool BoolParameter(string name)
    {
        var text = Parameter(name);
        if (text is null)
        {
            return false;
        }

        return bool.TryParse(text, out var value)
            ? value
            : throw RequestValidationException.For(name, $"must be true or false; got '{text}'.");
    }
}

/// <summary>The state of one pipeline run shared by its steps.</summary>
public sealed class RunContext
{
    public required string PipelineLoggingId { get; init; }

    public required PipelineDefinition Pipeline { get; init; }

    /// <summary>The org the run is for; <c>null</c> for platform pipelines such as bootstrap.</summary>
    public required OrgSlug? Org { get; init; }

    public required Actor Actor { get; init; }

    public required DeploymentEnvironment Environment { get; init; }

    public required IReadOnlyDictionary<string, string> Parameters { get; init; }

    /// <summary>Results of the steps that completed so far, by step id.</summary>
    public Dictionary<string, StepResult> CompletedSteps { get; } = new(StringComparer.Ordinal);

    public string DateParameterOrToday(TimeProvider time) =>
        Parameters.TryGetValue("date", out var d) ? d : DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
