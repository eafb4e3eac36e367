using Convergence.Core.Configuration;

namespace Convergence.Core.Pipelines;

/// <summary>Orders steps so each runs after its <c>depends_on</c>; ties keep file order.</summary>
public static class StepOrder
{
    /// <summary>A dependency cycle among <paramref name="steps"/> as step ids in order, or empty when there is none.</summary>
    public static IReadOnlyList<string> FindCycle(IReadOnlyList<StepDefinition> steps)
    {
        var byId = steps.ToDictionary(s => s.StepId, StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 = on the path, 2 = done
        var path = new List<string>();

        List<string>? Visit(string id)
        {
            state[id] = 1;
            path.Add(id);
            foreach (var next in byId[id].DependsOn.Where(byId.ContainsKey))
            {
                if (state.GetValueOrDefault(next) == 1)
                {
                    return path[path.IndexOf(next)..];
                }

                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } found)
                {
                    return found;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[id] = 2;
            return null;
        }

        foreach (var step in steps)
        {
            if (state.GetValueOrDefault(step.StepId) == 0 && Visit(step.StepId) is { } cycle)
            {
                return cycle;
            }
        }

        return [];
    }

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
