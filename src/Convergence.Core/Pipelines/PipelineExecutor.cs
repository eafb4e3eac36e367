using System.Runtime.ExceptionServices;
using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Microsoft.Extensions.Logging;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Runs a pipeline's steps in dependency order and records the run and every step in the control plane.
/// </summary>
/// <remarks>
/// A failing step fails the run: later steps are recorded as SKIPPED and the processor's exception is rethrown
/// unchanged, so callers (the HTTP layer) map it like any other error. Platform pipelines that run before bootstrap
/// has created the run-log tables are recorded once they exist (the bootstrap run records itself at its end).
/// </remarks>
public sealed partial class PipelineExecutor(
    PipelineCatalog catalog,
    ProcessorRegistry processors,
    IControlPlaneStore store,
    DeploymentEnvironment environment,
    TimeProvider time,
    ILogger<PipelineExecutor> logger)
{
    public async Task<PipelineRunResult> RunAsync(PipelineRunRequest request, CancellationToken cancellationToken)
    {
        var pipeline = catalog.Get(request.PipelinePath);
        var steps = StepOrder.Resolve(pipeline);
        foreach (var step in steps)
        {
            _ = processors.Get(step.PsType);
        }

        var runId = Guid.CreateVersion7(time.GetUtcNow()).ToString();
        var values = PlaceholderValues(pipeline, request, runId);
        var resolver = new PlaceholderResolver(values, pipeline.SourceFile);
        var pipelineId = resolver.Resolve(pipeline.PipelineId, "pipeline_id");
        values["pipeline_id"] = pipelineId;

        var context = new RunContext
        {
            PipelineLoggingId = runId,
            Pipeline = pipeline,
            Org = request.Org,
            Actor = request.Actor,
            Environment = environment,
            Parameters = request.Parameters,
        };

        var started = time.GetUtcNow();
        var run = new PipelineRunRecord(
            runId, request.Org, pipelineId, pipeline.Path, request.Trigger, request.Actor.UserId, request.Actor.Type == Audit.Actor.OrgKeyType ? request.Actor.KeyId : null,
            request.Actor.RequestId, RunStatus.Running, request.Parameters, ResolvedConfig(pipeline, steps, resolver), started, null, null, null, 1, started);
        var stepLogs = steps.Select(s => new StepLogRecord(Guid.CreateVersion7(started).ToString(), runId, request.Org, s.StepId, s.PsType, RunStatus.Pending, null, null, null, 1, null, null, null)).ToList();

        var journal = new RunJournal(store, logger, await store.IsBootstrappedAsync(cancellationToken));
        await journal.SaveAsync(run, stepLogs, cancellationToken);
        LogRunStarted(logger, runId, pipeline.Path, request.Org?.Value);

        Exception? failure = null;
        for (var i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            if (failure is not null)
            {
                stepLogs[i] = stepLogs[i] with { Status = RunStatus.Skipped };
                continue;
            }

            var stepStarted = time.GetUtcNow();
            stepLogs[i] = stepLogs[i] with { Status = RunStatus.Running, StartTime = stepStarted };
            await journal.SaveStepAsync(stepLogs[i], cancellationToken);
            try
            {
                var config = resolver.ResolveMap(step.Config, $"steps.{step.StepId}.config");
                var result = await ExecuteStepAsync(processors.Get(step.PsType), new StepContext(context, step, config), step, cancellationToken);
                context.CompletedSteps[step.StepId] = result;
                stepLogs[i] = stepLogs[i] with { Status = RunStatus.Completed, EndTime = time.GetUtcNow(), RowsProcessed = result.RowsProcessed, Metadata = result.Metadata };
            }
            catch (Exception ex)
            {
                failure = ex;
                var status = ex is OperationCanceledException && cancellationToken.IsCancellationRequested ? RunStatus.Cancelled : RunStatus.Failed;
                stepLogs[i] = stepLogs[i] with { Status = status, EndTime = time.GetUtcNow(), ErrorClass = ex.GetType().Name, ErrorMessage = ex.Message };
                LogStepFailed(logger, runId, step.StepId, step.PsType, ex.GetType().Name, ex.Message);
            }

            await journal.SaveStepAsync(stepLogs[i], CancellationToken.None);
        }

        var ended = time.GetUtcNow();
        run = failure is null
            ? run with { Status = RunStatus.Completed, EndTime = ended }
            : run with
            {
                Status = failure is OperationCanceledException && cancellationToken.IsCancellationRequested ? RunStatus.Cancelled : RunStatus.Failed,
                EndTime = ended,
                ErrorClass = failure.GetType().Name,
                ErrorMessage = failure.Message,
            };

        if (!journal.Enabled && await store.IsBootstrappedAsync(CancellationToken.None))
        {
            journal = journal with { Enabled = true };
        }

        await journal.SaveAsync(run, stepLogs, CancellationToken.None);
        LogRunFinished(logger, runId, pipeline.Path, run.Status, run.DurationMs ?? 0);

        if (failure is not null)
        {
            ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return new PipelineRunResult(runId, pipelineId, run.Status, context.CompletedSteps);
    }

    private async Task<StepResult> ExecuteStepAsync(IProcessor processor, StepContext context, StepDefinition step, CancellationToken cancellationToken)
    {
        if (step.TimeoutSeconds is not { } seconds)
        {
            return await processor.ExecuteAsync(context, cancellationToken);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds), time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await processor.ExecuteAsync(context, linked.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Step '{step.StepId}' did not finish within {seconds} s (timeout_seconds).");
        }
    }

    private Dictionary<string, string> PlaceholderValues(PipelineDefinition pipeline, PipelineRunRequest request, string runId)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["env"] = environment.DatasetSuffix,
            ["run_id"] = runId,
            ["pipeline_id"] = pipeline.PipelineId,
        };
        if (request.Org is { } org)
        {
            values["org_slug"] = org.Value;
            values["dataset"] = DatasetRef.ForOrg(org, environment).Name;
        }

        foreach (var (key, value) in pipeline.Variables)
        {
            values[key] = value;
        }

        foreach (var (key, value) in request.Parameters)
        {
            if (Storage.SqlIdentifier.IsValid(key) && !values.ContainsKey(key))
            {
                values[key] = value;
            }
        }

        return values;
    }

    private static string ResolvedConfig(PipelineDefinition pipeline, IReadOnlyList<StepDefinition> steps, PlaceholderResolver resolver) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["pipeline_path"] = pipeline.Path,
            ["steps"] = steps.Select(s => new Dictionary<string, object?>
            {
                ["step_id"] = s.StepId,
                ["ps_type"] = s.PsType,
                ["depends_on"] = s.DependsOn,
                ["timeout_seconds"] = s.TimeoutSeconds,
                ["config"] = resolver.ResolveMap(s.Config, $"steps.{s.StepId}.config"),
            }).ToList(),
        });

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
                await Store.SaveRunAsync(run, cancellationToken);
                foreach (var step in steps)
                {
                    await Store.SaveStepAsync(step, cancellationToken);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogJournalFailed(Logger, run.PipelineLoggingId, ex.Message);
            }
        }

        public async Task SaveStepAsync(StepLogRecord step, CancellationToken cancellationToken)
        {
            if (!Enabled)
            {
                return;
            }

            try
            {
                await Store.SaveStepAsync(step, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
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
}
