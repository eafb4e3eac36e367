namespace Convergence.Core.Pipelines;

/// <summary>Which parameter names a run of a pipeline accepts: one rule for API runs and schedules alike.</summary>
public static class RunParameterRules
{
    /// <summary>The date-slice parameters every pipeline takes.</summary>
    public static readonly IReadOnlyList<string> DateKeys = [RunParameters.DateKey, RunParameters.StartDateKey, RunParameters.EndDateKey];

    /// <summary>
    /// The names in <paramref name="names"/> that <paramref name="pipeline"/> does not take, each with a message that
    /// lists what it does take. A run takes the date slice (<c>date</c>, or <c>start_date</c> and <c>end_date</c>),
    /// the pipeline's <c>variables</c> (to override them) and its declared <c>parameters</c>. Empty when all are known.
    /// </summary>
    public static IReadOnlyDictionary<string, string[]> UnknownParameters(PipelineDefinition pipeline, IEnumerable<string> names)
    {
        var allowed = PipelineLoader.BuiltInPlaceholders.Where(DateKeys.Contains)
            .Concat(pipeline.Variables.Keys).Concat(pipeline.Parameters).ToHashSet(StringComparer.Ordinal);
        var declared = pipeline.Parameters.Count > 0 ? ", " + string.Join(", ", pipeline.Parameters) : string.Empty;
        return names.Where(k => !allowed.Contains(k)).Distinct(StringComparer.Ordinal).ToDictionary(
            k => k,
            k => new[] { $"'{k}' is not a parameter of {pipeline.Path}; it takes date, or start_date and end_date{declared}." },
            StringComparer.Ordinal);
    }
}
