using System.Globalization;
using System.Runtime.ExceptionServices;
using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Runs a pipeline's steps in dependency order and records the run, every step attempt and every data-quality result
/// in the control plane.
/// </summary>
/// <remarks>
/// <para>Each step attempt is atomic: its destination write, data-quality checks and commit happen together, and a
/// failed, timed-out or rejected attempt leaves the table as it was. Transient failures
/// (<see cref="TransientException.IsTransient"/>) are retried with exponential backoff and jitter as the step's
/// <c>retry</c> says; anything else fails the step at once, the remaining steps are SKIPPED and the processor's
/// exception is rethrown unchanged for the caller to map.</para>
/// <para>Before any step, the org checks of the API (<see cref="IOrgRunRequestValidator"/>) run again, so a scheduled or
/// queued run whose org lacks what a step needs ends FAILED with the validator's reason and every step SKIPPED.</para>
/// <para>Platform pipelines that run before bootstrap has created the run-log tables are recorded once they exist.</para>
/// </remarks>
public sealed partial class PipelineExecutor(
    PipelineCatalog catalog,
    ProcessorRegistry processors,
    IControlPlaneStore store,
    IRunQueueStore queue,
    IWarehouse warehouse,
    TableSchemaCatalog tables,
    DeploymentEnvironment environment,
    TimeProvider time,
    WorkerIdentity worker,
    RunCancellationRegistry cancellations,
    ILogger<PipelineExecutor> logger,
    Random? random = null)
{
    private readonly Random jitter = random ?? Random.Shared;

    /// <summary>Validates a request and builds its PENDING run record; nothing is stored.</summary>
    /// <exception cref="ResourceNotFoundException">No such pipeline.</exception>
    /// <exception cref="RequestValidationException">Invalid dates or parameters.</exception>
    public PipelineRunRecord Prepare(PipelineRunRequest request, string? idempotencyKey = null) => Prepare(request, idempotencyKey, runId: null);

    /// <summary>
    /// Validates a request and builds its PENDING run record under <paramref name="runId"/> (a new id when null); nothing
    /// is stored. The run queue uses a given id for scheduled runs, whose id is assigned when they are queued and whose
    /// row is created when a worker claims them.
    /// </summary>
    public PipelineRunRecord Prepare(PipelineRunRequest request, string? idempotencyKey, string? runId)
    {
        var (pipeline, parameters, slice) = Validated(request);
        var now = time.GetUtcNow();
        if (!parameters.ContainsKey(RunParameters.DateKey) && !parameters.ContainsKey(RunParameters.StartDateKey))
        {
            // Pin the logical date now, so a run queued before midnight still processes the day it was asked for.
            parameters[RunParameters.DateKey] = slice.Date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        }

        runId ??= Guid.CreateVersion7(now).ToString();
        var placeholders = Placeholders(pipeline, request.Org, parameters, slice, runId);
        var resolver = new PlaceholderResolver(Texts(placeholders), pipeline.SourceFile);
        var pipelineId = resolver.Resolve(pipeline.PipelineId, "pipeline_id");
        return new PipelineRunRecord(
            runId, request.Org, pipelineId, pipeline.Path, request.Trigger, request.Actor.UserId,
            request.Actor.Type == Actor.OrgKeyType ? request.Actor.KeyId : null, request.Actor.RequestId, RunStatus.Pending, parameters,
            ResolvedConfig(pipeline, resolver), null, null, null, null, 1, now, idempotencyKey, worker.Id, now);
    }

    /// <summary>
    /// The checks of <see cref="Prepare(PipelineRunRequest, string?)"/> without building the run record (no placeholder
    /// resolution, no resolved config): the scheduler's trigger validates each tick with it and the run is prepared when
    /// a worker claims it.
    /// </summary>
    /// <exception cref="ResourceNotFoundException">No such pipeline.</exception>
    /// <exception cref="RequestValidationException">Invalid dates or parameters.</exception>
    public void Validate(PipelineRunRequest request) => Validated(request);

    private (PipelineDefinition Pipeline, Dictionary<string, string> Parameters, RunParameters Slice) Validated(PipelineRunRequest request)
    {
        var pipeline = catalog.Get(request.PipelinePath);
        var parameters = new Dictionary<string, string>(request.Parameters, StringComparer.Ordinal);
        var slice = RunParameters.Parse(parameters, DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime), pipeline.MaxDateRangeDays);
        foreach (var step in pipeline.Steps)
        {
            if (processors.TryGet(step.PsType, out var processor) && processor is IRunRequestValidator validator)
            {
                validator.ValidateRequest(step, parameters);
            }
        }

        return (pipeline, parameters, slice);
    }

    /// <summary>
    /// The org checks of <paramref name="request"/>'s steps (<see cref="IOrgRunRequestValidator"/>), such as a step
    /// reading the org's own BigQuery needing its GCP integration; nothing for platform runs without an org.
    /// </summary>
    /// <exception cref="RequestValidationException">Something a step needs of the org is missing.</exception>
    public async Task ValidateOrgRequestAsync(PipelineRunRequest request, CancellationToken cancellationToken)
    {
        if (await OrgRefusalAsync(catalog.Get(request.PipelinePath), request.Org, cancellationToken) is { } refusal)
        {
            ExceptionDispatchInfo.Capture(refusal.Problem).Throw();
        }
    }

    /// <summary>
    /// The first of <paramref name="pipeline"/>'s steps whose processor refuses <paramref name="org"/>
    /// (<see cref="IOrgRunRequestValidator"/>), with its reason; null when every step accepts or there is no org. The one
    /// place both the API's 422 and the executor's check before a queued run's steps go through.
    /// </summary>
    private async Task<OrgRefusal?> OrgRefusalAsync(PipelineDefinition pipeline, OrgSlug? org, CancellationToken cancellationToken)
    {
        if (org is not { } o)
        {
            return null;
        }

        foreach (var step in pipeline.Steps)
        {
            if (processors.TryGet(step.PsType, out var processor) && processor is IOrgRunRequestValidator validator)
            {
                try
                {
                    await validator.ValidateOrgRequestAsync(step, o, cancellationToken);
                }
                catch (RequestValidationException ex)
                {
                    return new OrgRefusal(step, ex);
                }
            }
        }

        return null;
    }

    private sealed record OrgRefusal(StepDefinition Step, RequestValidationException Problem)
    {
        /// <summary>The refusal as a run's error: the step, its processor and the validator's own words (never secrets).</summary>
        public string Message => $"Not run: step '{Step.StepId}' ({Step.PsType}) refused the organization: {string.Join(" ", Problem.Errors.SelectMany(e => e.Value))} No step was executed.";
    }

    /// <summary>Prepares and executes a run in the caller's flow (platform pipelines, synchronous admin calls).</summary>
    public async Task<PipelineRunResult> RunAsync(PipelineRunRequest request, CancellationToken cancellationToken)
    {
        var run = Prepare(request);
        if (await store.IsBootstrappedAsync(cancellationToken))
        {
            await store.CreateRunAsync(run, cancellationToken);
        }

        return await ExecuteAsync(run, request.Actor, cancellationToken, request.Secrets);
    }

    /// <summary>
    /// Executes a prepared run (stored as PENDING, or not stored when bootstrap has not run yet) and records its end; a
    /// failed or cancelled run's exception is rethrown unchanged after it is recorded.
    /// </summary>
    public async Task<PipelineRunResult> ExecuteAsync(PipelineRunRecord pending, Actor actor, CancellationToken cancellationToken, RunSecrets? secrets = null)
    {
        var ended = await RunStepsAsync(pending, actor, cancellationToken, secrets, lease: null);
        var journal = ended.Journal;
        if (!journal.Enabled && await store.IsBootstrappedAsync(CancellationToken.None))
        {
            journal = journal with { Enabled = true };
        }

        await journal.SaveAsync(ended.Run, ended.Steps, CancellationToken.None);
        LogRunFinished(logger, ended.Run.PipelineLoggingId, ended.Run.PipelinePath, ended.Run.Status, ended.Run.DurationMs ?? 0);
        if (ended.Failure is not null)
        {
            ExceptionDispatchInfo.Capture(ended.Failure).Throw();
        }

        return ended.Result;
    }

    /// <summary>
    /// Executes the run of a claimed queue entry under its worker's <paramref name="lease"/>: the entry moves to RUNNING in
    /// the transaction that records the run's start, and is closed with the run's final status in the one that records its
    /// end (<see cref="IRunQueueStore.StartAsync"/>, <see cref="IRunQueueStore.FinishAsync"/>). A failed or cancelled run
    /// is an outcome here, not an exception.
    /// </summary>
    /// <exception cref="LeaseLostException">The lease was lost before the run started; nothing was written.</exception>
    public async Task<QueuedRunOutcome> ExecuteQueuedAsync(PipelineRunRecord pending, Actor actor, QueueLease lease, CancellationToken cancellationToken)
    {
        var ended = await RunStepsAsync(pending, actor, cancellationToken, secrets: null, lease);
        bool? closed = null;
        try
        {
            closed = await queue.FinishAsync(lease, ended.Run, ended.Steps, time.GetUtcNow(), CancellationToken.None);
        }
        catch (Exception ex)
        {
            // The caller closes the entry (or the rescuer does, when its lease expires).
            LogJournalFailed(logger, ended.Run.PipelineLoggingId, ex.Message);
        }

        LogRunFinished(logger, ended.Run.PipelineLoggingId, ended.Run.PipelinePath, ended.Run.Status, ended.Run.DurationMs ?? 0);
        return new QueuedRunOutcome(ended.Run.Status, ended.Run.ErrorMessage, ended.Failure, closed);
    }

    /// <summary>A run's end as <see cref="RunStepsAsync"/> leaves it, not yet recorded.</summary>
    private sealed record EndedRun(PipelineRunRecord Run, List<StepLogRecord> Steps, Exception? Failure, PipelineRunResult Result, RunJournal Journal);

    /// <summary>
    /// Records the run's start (under <paramref name="lease"/> for a queued run) and executes its steps, each step's
    /// progress recorded as it goes; the run's end is the caller's to record.
    /// </summary>
    private async Task<EndedRun> RunStepsAsync(PipelineRunRecord pending, Actor actor, CancellationToken cancellationToken, RunSecrets? secrets, QueueLease? lease)
    {
        var pipeline = catalog.Get(pending.PipelinePath);
        var steps = StepOrder.Resolve(pipeline);
        var slice = RunParameters.Parse(pending.Parameters, DateOnly.FromDateTime(pending.CreatedAt.UtcDateTime), pipeline.MaxDateRangeDays);
        var placeholders = Placeholders(pipeline, pending.OrgSlug, pending.Parameters, slice, pending.PipelineLoggingId);
        placeholders["pipeline_id"] = pending.PipelineId;
        var resolver = new PlaceholderResolver(Texts(placeholders), pipeline.SourceFile);
        var context = new RunContext
        {
            PipelineLoggingId = pending.PipelineLoggingId,
            Pipeline = pipeline,
            Org = pending.OrgSlug,
            Actor = actor,
            Environment = environment,
            Parameters = pending.Parameters,
            Slice = slice,
            Placeholders = placeholders,
            WarehouseKind = warehouse.Kind,
            Secrets = secrets ?? new RunSecrets(),
        };

        var journal = new RunJournal(store, logger, lease is not null || await store.IsBootstrappedAsync(cancellationToken));
        var started = time.GetUtcNow();
        var run = pending with { Status = RunStatus.Running, StartTime = started, WorkerId = worker.Id, HeartbeatAt = started };
        // A retried run (its first worker's lease expired) logs its steps apart from the abandoned attempt's.
        var stepPrefix = pending.Attempt > 1 ? $"{pending.PipelineLoggingId}-a{pending.Attempt}" : pending.PipelineLoggingId;
        var stepLogs = steps.Select((s, i) => new StepLogRecord(
            $"{stepPrefix}-{i:D2}", pending.PipelineLoggingId, pending.OrgSlug, s.StepId, s.PsType, RunStatus.Pending, null, null, null, 0, null, null, null)).ToList();

        // A finished step is saved at once, except the last: the run's final save, which follows it directly, writes it
        // with the run (one round trip fewer a run).
        Task SaveUnlessLastAsync(int index) => index == steps.Count - 1 ? Task.CompletedTask : journal.SaveStepAsync(stepLogs[index]);

        using var runCancellation = cancellations.Register(run.PipelineLoggingId, cancellationToken);
        var token = runCancellation.Token;
        Exception? failure = null;
        try
        {
            // A queued run (scheduled, or admitted by the API before the org changed) gets the API's org checks again
            // before any step: a refusal fails the run with the validator's reason and every step stays SKIPPED.
            // (A check that cannot be made, such as the store being unreachable, fails the run the same way.) The checks
            // only read, so they come before the start is recorded.
            try
            {
                if (await OrgRefusalAsync(pipeline, run.OrgSlug, token) is { } refusal)
                {
                    failure = new RunRefusedException(refusal.Message);
                    for (var i = 0; i < steps.Count; i++)
                    {
                        if (steps[i].StepId == refusal.Step.StepId)
                        {
                            stepLogs[i] = stepLogs[i] with { ErrorClass = nameof(RunRefusedException), ErrorMessage = refusal.Message };
                        }
                    }

                    LogRunRefused(logger, run.PipelineLoggingId, refusal.Step.StepId, refusal.Step.PsType, refusal.Message);
                }
            }
            catch (Exception ex)
            {
                failure = ex;
            }

            // The start records the first step's first attempt as RUNNING, so that attempt needs no save of its own.
            var firstAttemptRecorded = failure is null && !token.IsCancellationRequested && steps.Count > 0;
            if (firstAttemptRecorded)
            {
                stepLogs[0] = stepLogs[0] with { Status = RunStatus.Running, StartTime = started, Attempt = 1 };
            }

            if (lease is null)
            {
                await journal.SaveAsync(run, stepLogs, cancellationToken);
            }
            else if (!await queue.StartAsync(lease, run, stepLogs, started, cancellationToken))
            {
                throw new LeaseLostException($"Run {run.PipelineLoggingId} was not started: the lease on queue entry {lease.QueueId} was lost first; its new owner runs it.");
            }

            LogRunStarted(logger, run.PipelineLoggingId, pipeline.Path, run.OrgSlug?.Value);

            for (var i = 0; i < steps.Count; i++)
            {
                var step = steps[i];
                if (failure is not null || token.IsCancellationRequested)
                {
                    // Never started (the first step may have been recorded RUNNING with the run's start).
                    stepLogs[i] = stepLogs[i] with { Status = RunStatus.Skipped, StartTime = null, Attempt = 0 };
                    await SaveUnlessLastAsync(i);
                    failure ??= new OperationCanceledException(token);
                    continue;
                }

                var index = i;
                try
                {
                    var result = await ExecuteStepAsync(context, step, resolver, log => stepLogs[index] = log, stepLogs[index], i == 0 && firstAttemptRecorded, journal, token);
                    context.CompletedSteps[step.StepId] = result;
                    stepLogs[i] = stepLogs[i] with { Status = RunStatus.Completed, EndTime = time.GetUtcNow(), RowsProcessed = result.RowsProcessed, Metadata = result.Metadata };
                }
                catch (Exception ex)
                {
                    failure = ex;
                    var cancelled = ex is OperationCanceledException && token.IsCancellationRequested && !cancellationToken.IsCancellationRequested;
                    var interrupted = ex is OperationCanceledException && cancellationToken.IsCancellationRequested;
                    stepLogs[i] = stepLogs[i] with
                    {
                        Status = cancelled ? RunStatus.Cancelled : RunStatus.Failed,
                        EndTime = time.GetUtcNow(),
                        ErrorClass = interrupted ? nameof(RunInterruptedException) : ErrorClass(ex),
                        ErrorMessage = interrupted ? "The service stopped while the step ran; its writes were rolled back." : ex.Message,
                    };
                    LogStepFailed(logger, run.PipelineLoggingId, step.StepId, step.PsType, ErrorClass(ex), ex.Message);
                }

                await SaveUnlessLastAsync(i);
            }
        }
        finally
        {
            cancellations.Unregister(run.PipelineLoggingId);
        }

        var ended = time.GetUtcNow();
        if (failure is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            // The host is stopping, nobody cancelled the run: say so, and leave it to a rerun.
            failure = new RunInterruptedException("The service stopped while the run executed; its writes were rolled back. Run it again.");
        }

        run = failure is null
            ? run with { Status = RunStatus.Completed, EndTime = ended, HeartbeatAt = ended }
            : run with
            {
                Status = failure is OperationCanceledException && token.IsCancellationRequested ? RunStatus.Cancelled : RunStatus.Failed,
                EndTime = ended,
                HeartbeatAt = ended,
                ErrorClass = ErrorClass(failure),
                ErrorMessage = failure.Message,
            };

        return new EndedRun(run, stepLogs, failure, new PipelineRunResult(run.PipelineLoggingId, run.PipelineId, run.Status, context.CompletedSteps), journal);
    }

    private async Task<StepResult> ExecuteStepAsync(
        RunContext run,
        StepDefinition step,
        PlaceholderResolver resolver,
        Action<StepLogRecord> update,
        StepLogRecord log,
        bool firstAttemptRecorded,
        RunJournal journal,
        CancellationToken cancellationToken)
    {
        var processor = processors.Get(step.PsType);
        var config = step.Config
            .Where(kv => !StepContext.IsSqlKey(kv.Key))
            .ToDictionary(kv => kv.Key, kv => resolver.ResolveValue(kv.Value, $"steps.{step.StepId}.config.{kv.Key}"));
        var attempt = 0;

        var builder = new ResiliencePipelineBuilder<StepResult> { TimeProvider = time };
        if (step.Retry.MaxAttempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions<StepResult>
            {
                MaxRetryAttempts = step.Retry.MaxAttempts - 1,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && TransientException.IsTransient(ex) && !cancellationToken.IsCancellationRequested),
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(
                    RetryDelay(step.Retry, args.AttemptNumber, (args.Outcome.Exception as TransientException)?.RetryAfter, jitter.NextDouble())),
                OnRetry = args =>
                {
                    LogStepRetry(logger, run.PipelineLoggingId, step.StepId, args.AttemptNumber + 1, args.RetryDelay.TotalSeconds, args.Outcome.Exception?.Message ?? string.Empty);
                    return ValueTask.CompletedTask;
                },
            });
        }

        return await builder.Build().ExecuteAsync(
            async token =>
            {
                attempt++;
                log = log with { Status = RunStatus.Running, StartTime = log.StartTime ?? time.GetUtcNow(), Attempt = attempt, ErrorClass = null, ErrorMessage = null };
                update(log);
                if (attempt > 1 || !firstAttemptRecorded)
                {
                    await journal.SaveStepAsync(log);
                }

                return await ExecuteAttemptAsync(run, step, processor, config, log.StepLoggingId, attempt, token);
            },
            cancellationToken);
    }

    /// <summary>
    /// The wait before retry <paramref name="retry"/> (0-based): <c>backoff × 2^retry</c> stretched by up to a quarter at
    /// random, never less than the other side's Retry-After, capped at <c>max_backoff_seconds</c>. Growth of 2 outruns
    /// the jitter, so waits never shrink and never drop below <c>backoff_seconds</c>.
    /// </summary>
    internal static TimeSpan RetryDelay(RetryPolicy policy, int retry, TimeSpan? retryAfter, double random)
    {
        var seconds = policy.BackoffSeconds * Math.Pow(2, retry) * (1 + (0.25 * random));
        seconds = Math.Max(seconds, retryAfter?.TotalSeconds ?? 0);
        return TimeSpan.FromSeconds(Math.Min(seconds, policy.MaxBackoffSeconds));
    }

    private async Task<StepResult> ExecuteAttemptAsync(
        RunContext run, StepDefinition step, IProcessor processor, IReadOnlyDictionary<string, object?> config, string stepLoggingId, int attempt, CancellationToken cancellationToken)
    {
        using var timeout = step.TimeoutSeconds is { } seconds ? new CancellationTokenSource(TimeSpan.FromSeconds(seconds), time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        await using var destination = CreateDestination(run, step);
        try
        {
            var result = await processor.ExecuteAsync(new StepContext(run, step, config, destination, attempt), linked.Token);
            if (destination is not null)
            {
                var write = destination.Write
                    ?? throw new InvalidOperationException($"Step '{step.StepId}' has a destination but {step.PsType} wrote nothing to it.");
                await CheckQualityAsync(run, step, write, stepLoggingId, linked.Token);
                await write.CommitAsync(linked.Token);
            }

            return result;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Step '{step.StepId}' did not finish within {step.TimeoutSeconds} s (timeout_seconds); its writes were rolled back.");
        }
    }

    private StepDestination? CreateDestination(RunContext run, StepDefinition step)
    {
        if (step.Destination is not { } d)
        {
            return null;
        }

        var dataset = d.DatasetType == DestinationDefinition.CentralDataset
            ? run.Org is null ? DatasetRef.Central : throw new InvalidOperationException($"Step '{step.StepId}': org pipelines cannot write to the central dataset.")
            : run.OrgDataset;
        var spec = new WriteSpec(d.WriteMode, d.Keys, d.PartitionColumn, run.Slice.StartDate, run.Slice.EndDate);
        return new StepDestination(warehouse, dataset, tables.Get(d.Table), spec);
    }

    private async Task CheckQualityAsync(RunContext run, StepDefinition step, IWarehouseWrite write, string stepLoggingId, CancellationToken cancellationToken)
    {
        var resolver = new PlaceholderResolver(Texts(run.Placeholders), run.Pipeline.SourceFile);
        var failures = new List<string>();
        foreach (var check in step.DqChecks)
        {
            var expression = check.Expression is null ? null : SqlTemplate.Bind(check.Expression, run.Placeholders, run.Pipeline.SourceFile, $"steps.{step.StepId}.dq_checks.{check.Name}.expression");
            var bound = check with
            {
                Values = [.. check.Values.Select(v => resolver.Resolve(v, $"steps.{step.StepId}.dq_checks.{check.Name}.values"))],
                Expression = expression?.Text,
            };
            var observation = await write.EvaluateAsync(bound, expression?.Parameters ?? new Dictionary<string, object?>(), cancellationToken);
            var severity = check.Severity == DqSeverity.Error ? "error" : "warn";
            await store.SaveDqResultAsync(
                new DqResultRecord(
                    Guid.CreateVersion7(time.GetUtcNow()).ToString(), run.PipelineLoggingId, stepLoggingId, run.Org, write.Schema.Name, check.Name, severity,
                    observation.Passed ? "PASSED" : "FAILED", observation.ObservedValue, observation.Threshold,
                    observation.FailingSample.Count == 0 ? null : JsonSerializer.Serialize(observation.FailingSample), time.GetUtcNow()),
                cancellationToken);
            if (!observation.Passed)
            {
                LogDqFailed(logger, run.PipelineLoggingId, step.StepId, check.Name, severity, observation.ObservedValue);
                if (check.Severity == DqSeverity.Error)
                {
                    failures.Add($"{check.Name} ({observation.ObservedValue})");
                }
            }
        }

        if (failures.Count > 0)
        {
            throw new DataQualityException($"Data-quality check(s) failed on {write.Schema.Name}: {string.Join("; ", failures)}. The step's write was rolled back.");
        }
    }

    private Dictionary<string, object?> Placeholders(PipelineDefinition pipeline, OrgSlug? org, IReadOnlyDictionary<string, string> parameters, RunParameters slice, string runId)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in parameters)
        {
            if (SqlIdentifier.IsValid(key))
            {
                values[key] = value;
            }
        }

        foreach (var (key, value) in pipeline.Variables)
        {
            values[key] = value;
        }

        foreach (var (key, value) in slice.Placeholders())
        {
            values[key] = value;
        }

        values["env"] = environment.DatasetSuffix;
        values["run_id"] = runId;
        values["pipeline_id"] = pipeline.PipelineId;
        if (org is { } o)
        {
            values["org_slug"] = o.Value;
            values["dataset"] = DatasetRef.ForOrg(o, environment).Name;
        }

        return values;
    }

    private static Dictionary<string, string> Texts(IReadOnlyDictionary<string, object?> values) =>
        values.Where(kv => kv.Value is not null).ToDictionary(
            kv => kv.Key,
            kv => kv.Value switch
            {
                DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                _ => Convert.ToString(kv.Value, CultureInfo.InvariantCulture)!,
            },
            StringComparer.Ordinal);

    private static string ResolvedConfig(PipelineDefinition pipeline, PlaceholderResolver resolver) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["pipeline_path"] = pipeline.Path,
            ["steps"] = StepOrder.Resolve(pipeline).Select(s => new Dictionary<string, object?>
            {
                ["step_id"] = s.StepId,
                ["ps_type"] = s.PsType,
                ["depends_on"] = s.DependsOn,
                ["timeout_seconds"] = s.TimeoutSeconds,
                ["retry"] = new Dictionary<string, object?> { ["max_attempts"] = s.Retry.MaxAttempts, ["backoff_seconds"] = s.Retry.BackoffSeconds },
                ["destination"] = s.Destination is { } d
                    ? new Dictionary<string, object?> { ["dataset_type"] = d.DatasetType, ["table"] = d.Table, ["write_mode"] = d.WriteMode.ToConfigName(), ["keys"] = d.Keys, ["partition_column"] = d.PartitionColumn }
                    : null,
                ["dq_checks"] = s.DqChecks.Select(c => c.Name).ToList(),
                // SQL stays as written: its placeholders are bound parameters, never text.
                ["config"] = s.Config.ToDictionary(kv => kv.Key, kv => StepContext.IsSqlKey(kv.Key) ? kv.Value : resolver.ResolveValue(kv.Value, $"steps.{s.StepId}.config.{kv.Key}")),
            }).ToList(),
        });

    private static string ErrorClass(Exception ex) => ex switch
    {
        OperationCanceledException => "Cancelled",
        _ when TransientException.IsTransient(ex) => $"Transient:{ex.GetType().Name}",
        _ => ex.GetType().Name,
    };

    /// <summary>Writes run and step rows when the run-log tables exist; a failed write is logged, never fatal.</summary>
    private sealed record RunJournal(IControlPlaneStore Store, ILogger Logger, bool Enabled)
    {
        public async Task SaveAsync(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken)
        {
            if (!Enabled)
            {
                return;
            }

            try
            {
                await Store.SaveRunAsync(run, steps, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogJournalFailed(Logger, run.PipelineLoggingId, ex.Message);
            }
        }

        public async Task SaveStepAsync(StepLogRecord step)
        {
            if (!Enabled)
            {
                return;
            }

            try
            {
                await Store.SaveStepAsync(step, CancellationToken.None);
            }
            catch (Exception ex)
            {
                LogJournalFailed(Logger, step.PipelineLoggingId, ex.Message);
            }
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Run {PipelineLoggingId} of {PipelinePath} started for org {OrgSlug}")]
    private static partial void LogRunStarted(ILogger logger, string pipelineLoggingId, string pipelinePath, string? orgSlug);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Run {PipelineLoggingId} of {PipelinePath} ended {Status} in {DurationMs} ms")]
    private static partial void LogRunFinished(ILogger logger, string pipelineLoggingId, string pipelinePath, string status, long durationMs);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Run {PipelineLoggingId} step {StepId} ({PsType}) failed: {ErrorClass}: {ErrorMessage}")]
    private static partial void LogStepFailed(ILogger logger, string pipelineLoggingId, string stepId, string psType, string errorClass, string errorMessage);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Run {PipelineLoggingId} could not be recorded: {Problem}")]
    private static partial void LogJournalFailed(ILogger logger, string pipelineLoggingId, string problem);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Run {PipelineLoggingId} step {StepId}: attempt {NextAttempt} in {DelaySeconds:0.0} s after a transient failure: {Problem}")]
    private static partial void LogStepRetry(ILogger logger, string pipelineLoggingId, string stepId, int nextAttempt, double delaySeconds, string problem);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "Run {PipelineLoggingId} not run: step {StepId} ({PsType}) refused the organization: {Reason}")]
    private static partial void LogRunRefused(ILogger logger, string pipelineLoggingId, string stepId, string psType, string reason);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Run {PipelineLoggingId} step {StepId}: data-quality check {CheckName} ({Severity}) failed: {Observed}")]
    private static partial void LogDqFailed(ILogger logger, string pipelineLoggingId, string stepId, string checkName, string severity, string observed);
}
