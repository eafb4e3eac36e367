namespace Convergence.Core.Pipelines;

/// <summary>
/// Implemented by a processor whose steps can reject a run's parameters when the run is requested, before it is
/// queued (such as a file that does not exist), so the caller gets a 422 instead of a run that fails later.
/// </summary>
/// <remarks>
/// <see cref="PipelineExecutor.Prepare(PipelineRunRequest, string?)"/> calls it for every step of the pipeline with the step as configured
/// (placeholders unresolved) and the request's parameters. It must be cheap and side-effect free, and throw
/// <see cref="Errors.RequestValidationException"/> naming the parameter.
/// </remarks>
public interface IRunRequestValidator
{
    void ValidateRequest(StepDefinition step, IReadOnlyDictionary<string, string> parameters);
}
