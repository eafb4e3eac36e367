using Convergence.Core.Configuration;

namespace Convergence.Core.Pipelines;

/// <summary>Orders steps so each runs after its <c>depends_on</c>; ties keep file order.</summary>
public static class StepOrder
{
    public static IReadOnlyList<StepDefinition> Resolve(PipelineDefinition pipeline)
    {
        var ordered = new List<StepDefinition>(pipeline.Steps.Count);
        var done = new HashSet<string>(StringComparer.Ordinal);
        var remaining = pipeline.Steps.ToList();
        while (remaining.Count > 0)
        {
            var next = remaining.FirstOrDefault(s => s.DependsOn.All(done.Contains))
                ?? throw new ConfigurationErrorException(
                    pipeline.SourceFile,
                    null,
                    "depends_on",
                    $"dependency cycle among steps {string.Join(", ", remaining.Select(s => s.StepId))}");
            ordered.Add(next);
            done.Add(next.StepId);
            remaining.Remove(next);
        }

        return ordered;
    }
}
