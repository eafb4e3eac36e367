using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.Core.Pipelines;

/// <summary>Everything one attempt of a step sees of its run.</summary>
public sealed class StepContext
{
    /// <summary>Config keys holding SQL: never text-substituted, their placeholders become bound parameters.</summary>
    public static bool IsSqlKey(string key) => key == "query" || key.StartsWith("query_", StringComparison.Ordinal);

    public StepContext(RunContext run, StepDefinition step, IReadOnlyDictionary<string, object?> config, StepDestination? destination, int attempt)
    {
        Run = run;
        Step = step;
        Config = config;
        Destination = destination;
        Attempt = attempt;
    }

    public RunContext Run { get; }

    public StepDefinition Step { get; }

    /// <summary>The step's <c>config</c> with placeholders resolved (SQL keys excepted, see <see cref="Sql"/>).</summary>
    public IReadOnlyDictionary<string, object?> Config { get; }

    /// <summary>Where the step writes, when its config declares a destination.</summary>
    public StepDestination? Destination { get; }

    /// <summary>1 for the first attempt, then 2, 3, … on retries.</summary>
    public int Attempt { get; }

    public StepDestination RequireDestination() =>
        Destination ?? throw new InvalidOperationException($"Step '{Step.StepId}' ({Step.PsType}) needs a destination.");

    public string RequireConfigString(string key) =>
        Config.TryGetValue(key, out var value) && value is string s && s.Length > 0
            ? s
            : throw new InvalidOperationException($"Step '{Step.StepId}' ({Step.PsType}) needs config.{key}.");

    /// <summary>
    /// The SQL of config <paramref name="key"/> for the configured warehouse — <c>{key}_{dialect}</c> when the config has
    /// one, else <paramref name="key"/> — with its placeholders bound as parameters.
    /// </summary>
    public SqlQuery Sql(string key = "query")
    {
        var (text, field) = SqlText(key, Run.WarehouseKind);
        return SqlTemplate.Bind(text, Run.Placeholders, Run.Pipeline.SourceFile, field);
    }

    /// <summary>
    /// The raw SQL text of config <paramref name="key"/> for <paramref name="dialect"/> (<c>{key}_{dialect}</c> when the
    /// config has one, else <paramref name="key"/>) and the config field it came from, for a step that binds it itself
    /// (a query that runs somewhere other than the configured warehouse, such as a tenant's BigQuery).
    /// </summary>
    public (string Text, string Field) SqlText(string key, string dialect)
    {
        var dialectKey = $"{key}_{dialect}";
        var chosen = Step.Config.TryGetValue(dialectKey, out var d) && d is string ? dialectKey : key;
        var text = Step.Config.TryGetValue(chosen, out var v) && v is string s && s.Length > 0
            ? s
            : throw new InvalidOperationException($"Step '{Step.StepId}' ({Step.PsType}) needs config.{dialectKey} or config.{key}.");
        return (text, $"steps.{Step.StepId}.config.{chosen}");
    }

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

    /// <summary>The run's date slice.</summary>
    public required RunParameters Slice { get; init; }

    /// <summary>Values of every placeholder, typed (dates are <see cref="DateOnly"/>).</summary>
    public required IReadOnlyDictionary<string, object?> Placeholders { get; init; }

    /// <summary>The warehouse's dialect name (<c>sqlite</c>, <c>postgres</c>, <c>bigquery</c>), for per-dialect SQL.</summary>
    public required string WarehouseKind { get; init; }

    /// <summary>Secrets handed to the run in memory; never persisted, logged or put in step metadata.</summary>
    public RunSecrets Secrets { get; init; } = new();

    /// <summary>Results of the steps that completed so far, by step id.</summary>
    public Dictionary<string, StepResult> CompletedSteps { get; } = new(StringComparer.Ordinal);

    /// <summary>The org's dataset; throws for platform runs, which have none.</summary>
    public DatasetRef OrgDataset => Org is { } org
        ? DatasetRef.ForOrg(org, Environment)
        : throw new InvalidOperationException($"Pipeline {Pipeline.Path} runs without an org, so it has no org dataset.");
}
