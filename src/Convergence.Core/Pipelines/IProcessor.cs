namespace Convergence.Core.Pipelines;

/// <summary>
/// A step implementation, named by the <c>ps_type</c> a pipeline step refers to.
/// </summary>
/// <remarks>
/// <para>The executor calls <see cref="ExecuteAsync"/> once per attempt with the step's resolved config; it records
/// timings, status and <see cref="StepResult.RowsProcessed"/>, so a processor only does its work.</para>
/// <para>Processors are singletons and must be thread-safe. They throw <see cref="Errors.ConvergenceException"/>s
/// for expected failures, honour the cancellation token, and never put secrets in messages or metadata.</para>
/// </remarks>
public interface IProcessor
{
    /// <summary>The <c>ps_type</c>, such as <c>setup.initial.onetime_bootstrap</c>.</summary>
    string PsType { get; }

    Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken);
}

/// <summary>What a step produced.</summary>
/// <param name="RowsProcessed">Rows read or written, recorded on the step log.</param>
/// <param name="Metadata">Facts recorded on the step log; never secrets.</param>
/// <param name="Output">
/// A value handed to the caller of the run (such as the one-time API key of onboarding). Never persisted or logged.
/// </param>
public sealed record StepResult(long RowsProcessed, IReadOnlyDictionary<string, object?> Metadata, object? Output = null)
{
    public static StepResult Of(long rows, params (string Key, object? Value)[] metadata) =>
        new(rows, metadata.ToDictionary(m => m.Key, m => m.Value));
}
