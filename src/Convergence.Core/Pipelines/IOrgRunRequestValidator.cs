using Convergence.Core.Organizations;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Implemented by a processor whose steps need something of the org before a run can do anything (such as a stored
/// integration credential), so a run request without it gets a 422 naming what is missing instead of a queued run that
/// fails later.
/// </summary>
/// <remarks>
/// <see cref="PipelineExecutor.ValidateOrgRequestAsync"/> calls it for every step of an org's pipeline with the step as
/// configured (placeholders unresolved). It may read the control plane but must not change anything, and throws
/// <see cref="Errors.RequestValidationException"/> naming what is missing and how to provide it. The run still checks
/// again when it executes: the org can change in between.
/// </remarks>
public interface IOrgRunRequestValidator
{
    Task ValidateOrgRequestAsync(StepDefinition step, OrgSlug org, CancellationToken cancellationToken);
}
