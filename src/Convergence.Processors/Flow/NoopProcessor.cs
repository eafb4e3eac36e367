using Convergence.Core.Pipelines;

namespace Convergence.Processors.Flow;

/// <summary>
/// <c>flow.noop</c>: does nothing and succeeds. A join point for <c>depends_on</c> fan-in, and the step of pipelines
/// that measure or test orchestration itself.
/// </summary>
internal sealed class NoopProcessor : IProcessor
{
    public const string Type = "flow.noop";

    public string PsType => Type;

    public Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken) =>
        Task.FromResult(StepResult.Of(0));
}
