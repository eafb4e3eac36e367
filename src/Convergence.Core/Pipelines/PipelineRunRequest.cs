using Convergence.Core.Audit;
using Convergence.Core.Organizations;

namespace Convergence.Core.Pipelines;

/// <summary>A request to run one pipeline now.</summary>
/// <param name="PipelinePath">The config path, such as <c>setup/organizations/onboarding</c>.</param>
/// <param name="Org">The org the run is for; <c>null</c> for platform pipelines.</param>
public sealed record PipelineRunRequest(
    string PipelinePath,
    OrgSlug? Org,
    IReadOnlyDictionary<string, string> Parameters,
    Actor Actor,
    string Trigger)
{
    /// <summary>Secrets the run's steps need, in memory only (see <see cref="RunSecrets"/>); the caller disposes them.</summary>
    public RunSecrets? Secrets { get; init; }
}

/// <summary>The outcome of a completed run.</summary>
/// <summary>How a queued run ended (<see cref="PipelineExecutor.ExecuteQueuedAsync"/>).</summary>
/// <param name="Status">The run's final status.</param>
/// <param name="Error">The run's error message; null when it completed.</param>
/// <param name="Failure">What failed or cancelled it; null when it completed.</param>
/// <param name="EntryClosed">
/// Whether recording the end closed the queue entry: true; false when the lease had been lost (the entry's new owner
/// closes it); null when the end could not be recorded (the caller closes the entry, or the rescuer when its lease expires).
/// </param>
public sealed record QueuedRunOutcome(string Status, string? Error, Exception? Failure, bool? EntryClosed);

public sealed record PipelineRunResult(string PipelineLoggingId, string PipelineId, string Status, IReadOnlyDictionary<string, StepResult> Steps)
{
    /// <summary>The output of the step <paramref name="stepId"/>, as the processor returned it.</summary>
    public T Output<T>(string stepId) =>
        Steps.TryGetValue(stepId, out var step) && step.Output is T value
            ? value
            : throw new InvalidOperationException($"Step '{stepId}' produced no {typeof(T).Name}.");
}
