using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;

namespace Convergence.Api.Pipelines;

/// <summary>
/// Admits run requests from the API: validates, then in one store transaction checks the subscription and the plan's
/// daily and monthly limits, counts the run, records it PENDING (idempotently) and queues it.
/// </summary>
public sealed class PipelineRunService(
    PipelineExecutor executor,
    PipelineCatalog catalog,
    IControlPlaneStore store,
    IRunQueueStore queue,
    RunQueueSignal signal,
    ConvergenceWorkerOptions options,
    RunCancellationRegistry cancellations,
    TimeProvider time)
{
    public const int MaxIdempotencyKeyLength = 255;

    /// <summary>
    /// Queues a run of <paramref name="pipelinePath"/> for <paramref name="org"/>. With an idempotency key already used by
    /// the org: the same request returns the existing run (409 while it is unfinished), a different one is a 422.
    /// </summary>
    public async Task<SubmitOutcome> SubmitAsync(
        OrgSlug org, string pipelinePath, IReadOnlyDictionary<string, string> parameters, Actor actor, string? idempotencyKey, CancellationToken cancellationToken)
    {
        if (!PipelineCatalog.IsOrgRunnable(pipelinePath))
        {
            throw new ResourceNotFoundException("Pipeline", pipelinePath);
        }

        if (idempotencyKey is not null && (idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength || idempotencyKey.Any(c => c is < '!' or > '~')))
        {
            throw RequestValidationException.For("Idempotency-Key", $"must be 1 to {MaxIdempotencyKeyLength} visible ASCII characters.");
        }

        var profile = await store.FindOrganizationAsync(org, cancellationToken) ?? throw new ResourceNotFoundException("Organization", org.Value);
        if (profile.Status != OrgStatus.Active)
        {
            throw new ConflictException("Organization not active", $"Organization '{org}' is {profile.Status}; it cannot run pipelines.");
        }

        var pipeline = catalog.Get(pipelinePath);
        if (RunParameterRules.UnknownParameters(pipeline, parameters.Keys) is { Count: > 0 } unknown)
        {
            throw new RequestValidationException(unknown);
        }

        var run = executor.Prepare(new PipelineRunRequest(pipelinePath, org, parameters, actor, RunTrigger.Api), idempotencyKey);
        if (idempotencyKey is not null && await store.FindRunByIdempotencyKeyAsync(org, idempotencyKey, cancellationToken) is { } existing)
        {
            return Replay(existing, run);
        }

        await executor.ValidateOrgRequestAsync(new PipelineRunRequest(pipelinePath, org, parameters, actor, RunTrigger.Api), cancellationToken);
        var admission = new RunAdmission(run, QueuePriority.Api, options.MaxAttempts, null, CountsAgainstQuota: true, time.GetUtcNow());
        switch (await queue.AdmitAsync(admission, cancellationToken))
        {
            case AdmissionOutcome.Admitted:
                signal.Notify();
                return new SubmitOutcome(run, Created: true);
            case AdmissionOutcome.OverQuota over:
                var wait = over.Limit.ResetsAt - admission.Now;
                throw new QuotaExceededException(
                    over.Limit.Name, over.Limit.Limit, over.Limit.Used, over.Limit.ResetsAt, wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait,
                    $"{over.Limit.Describe()} Organization '{org}' is on the {profile.SubscriptionPlan} plan.");
            case AdmissionOutcome.SubscriptionInactive inactive:
                throw new SubscriptionInactiveException($"Organization '{org}' cannot run pipelines: {inactive.Reason}");
            default:
                // The idempotency key was taken by a concurrent request between the lookup and the insert.
                var winner = idempotencyKey is null ? null : await store.FindRunByIdempotencyKeyAsync(org, idempotencyKey, cancellationToken);
                return winner is null
                    ? throw new ConflictException("Idempotency conflict", "A concurrent request with this Idempotency-Key is being admitted; retry.")
                    : Replay(winner, run);
        }
    }

    /// <summary>Requests cancellation; a run executing in this process stops at its next cancellation check.</summary>
    public async Task<PipelineRunRecord> CancelAsync(string runId, OrgSlug? org, CancellationToken cancellationToken)
    {
        var run = await store.RequestCancelAsync(runId, org, time.GetUtcNow(), cancellationToken) ?? throw new ResourceNotFoundException("Run", runId);
        cancellations.TryCancel(runId);

        // A run still waiting in the queue is closed at once rather than when a worker reaches it.
        if (run.Status == RunStatus.Pending)
        {
            await queue.CancelQueuedAsync(runId, time.GetUtcNow(), cancellationToken);
        }

        return run;
    }

    private static SubmitOutcome Replay(PipelineRunRecord existing, PipelineRunRecord request)
    {
        var same = existing.PipelinePath == request.PipelinePath
                   && existing.Parameters.Count == request.Parameters.Count
                   && existing.Parameters.All(p => request.Parameters.TryGetValue(p.Key, out var v) && v == p.Value);
        if (!same)
        {
            throw RequestValidationException.For("Idempotency-Key", $"was already used for run {existing.PipelineLoggingId} of {existing.PipelinePath} with other parameters; use a new key.");
        }

        if (!existing.IsFinished)
        {
            throw new RunInProgressException(existing);
        }

        return new SubmitOutcome(existing, Created: false);
    }
}

/// <summary>The run a submission produced, and whether it is new.</summary>
public sealed record SubmitOutcome(PipelineRunRecord Run, bool Created);

/// <summary>The Idempotency-Key names a run that is still PENDING or RUNNING.</summary>
public sealed class RunInProgressException(PipelineRunRecord run)
    : ConvergenceException($"Run {run.PipelineLoggingId} for this Idempotency-Key is still {run.Status}; poll GET /api/v1/pipelines/runs/{run.PipelineLoggingId}.")
{
    public PipelineRunRecord Run { get; } = run;

    public override string Title => "Run in progress";
}
