using Convergence.Api.Auth;
using Convergence.Api.Pipelines;
using Convergence.Core.Configuration;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>Running pipelines and reading their runs, steps and data-quality results.</summary>
public static class PipelinesApi
{
    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 200;

    public static IEndpointRouteBuilder MapPipelinesApi(this IEndpointRouteBuilder app)
    {
        var org = app.MapGroup("/api/v1/pipelines").WithTags("Pipelines").RequireAuthorization(ConvergenceAuth.OrgPolicy);
        org.MapPost("/run/{org_slug}/{provider}/{domain}/{pipeline}", RunNested).WithSummary("Queue a run of configs/{provider}/{domain}/{pipeline}.yml; 202 with its id.");
        org.MapPost("/run/{org_slug}/{provider}/{pipeline}", RunFlat).WithSummary("Queue a run of configs/{provider}/{pipeline}.yml; 202 with its id.");

        var any = app.MapGroup("/api/v1/pipelines").WithTags("Pipelines").RequireAuthorization(ConvergenceAuth.AnyKeyPolicy);
        any.MapGet("", List).WithSummary("Pipelines an org can run.");
        any.MapGet("/runs", ListRuns).WithSummary("Runs, newest first, filtered and paged.");
        any.MapGet("/runs/{run_id}", GetRun).WithSummary("One run, with its resolved config.");
        any.MapGet("/runs/{run_id}/steps", GetSteps).WithSummary("A run's steps and data-quality results.");
        any.MapPost("/runs/{run_id}/cancel", Cancel).WithSummary("Ask a PENDING or RUNNING run to stop.");
        any.MapPost("/validate", Validate).WithSummary("Validate a pipeline YAML body (text/yaml) without running it.")
            .Accepts<string>("text/yaml", "application/yaml", "text/plain");

        app.MapGroup("/api/v1/organizations").WithTags("Pipelines").RequireAuthorization(ConvergenceAuth.OrgPolicy)
            .MapGet("/{org_slug}/comprehensive-view", Comprehensive)
            .WithSummary("The org's runs with their steps and data-quality results (the org_comprehensive_view rows).");
        return app;
    }

    public static Task<Results<Accepted<RunAcceptedResponse>, Ok<RunAcceptedResponse>>> RunNested(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, string domain, string pipeline,
        [FromBody(EmptyBodyBehavior = Microsoft.AspNetCore.Mvc.ModelBinding.EmptyBodyBehavior.Allow)] Dictionary<string, string>? body,
        HttpContext http, PipelineRunService runs, CancellationToken cancellationToken) =>
        SubmitAsync(orgSlug, $"{provider}/{domain}/{pipeline}", body, http, runs, cancellationToken);

    public static Task<Results<Accepted<RunAcceptedResponse>, Ok<RunAcceptedResponse>>> RunFlat(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, string pipeline,
        [FromBody(EmptyBodyBehavior = Microsoft.AspNetCore.Mvc.ModelBinding.EmptyBodyBehavior.Allow)] Dictionary<string, string>? body,
        HttpContext http, PipelineRunService runs, CancellationToken cancellationToken) =>
        SubmitAsync(orgSlug, $"{provider}/{pipeline}", body, http, runs, cancellationToken);

    public static Ok<PipelineListResponse> List([FromQuery(Name = "org")] string? orgText, HttpContext http, PipelineCatalog catalog)
    {
        var org = ScopeOf(http, orgText) ?? throw RequestValidationException.For("org", "is required with the root key.");
        var pipelines = catalog.ListPaths().Where(PipelineCatalog.IsOrgRunnable).Select(path =>
        {
            var p = catalog.Get(path);
            return new PipelineSummary(path, p.PipelineId, p.Description, p.Schedule, [.. p.Steps.Select(s => s.StepId)], [.. p.Parameters.Order(StringComparer.Ordinal)],
                p.MaxDateRangeDays, $"/api/v1/pipelines/run/{org}/{path}");
        }).ToList();
        return TypedResults.Ok(new PipelineListResponse(org.Value, pipelines));
    }

    public static async Task<Ok<RunListResponse>> ListRuns(
        HttpContext http, IControlPlaneStore store, CancellationToken cancellationToken,
        [FromQuery(Name = "org")] string? orgText = null, string? status = null, string? pipeline = null, DateTimeOffset? since = null,
        int? limit = null, [FromQuery(Name = "page_token")] string? pageToken = null)
    {
        var org = ScopeOf(http, orgText);
        string[] statuses = [RunStatus.Pending, RunStatus.Running, RunStatus.Completed, RunStatus.Failed, RunStatus.Cancelled];
        if (status is not null && !statuses.Contains(status))
        {
            throw RequestValidationException.For("status", $"must be one of {string.Join(", ", statuses)}.");
        }

        var page = await store.ListRunsAsync(new RunQuery(org, status, pipeline, since, PageSize(limit), pageToken), cancellationToken);
        return TypedResults.Ok(new RunListResponse([.. page.Runs.Select(r => RunResponse.From(r))], page.NextPageToken));
    }

    public static async Task<Ok<RunResponse>> GetRun([FromRoute(Name = "run_id")] string runId, HttpContext http, IControlPlaneStore store, CancellationToken cancellationToken) =>
        TypedResults.Ok(RunResponse.From(await FindRunAsync(runId, http, store, cancellationToken), includeConfig: true));

    public static async Task<Ok<RunStepsResponse>> GetSteps([FromRoute(Name = "run_id")] string runId, HttpContext http, IControlPlaneStore store, CancellationToken cancellationToken)
    {
        var run = await FindRunAsync(runId, http, store, cancellationToken);
        var steps = await store.ListStepsAsync(runId, run.OrgSlug, cancellationToken);
        var dq = await store.ListDqResultsAsync(runId, run.OrgSlug, cancellationToken);
        return TypedResults.Ok(new RunStepsResponse(runId, run.Status, [.. steps.Select(StepResponse.From)], [.. dq.Select(DqResultResponse.From)]));
    }

    public static async Task<Accepted<RunResponse>> Cancel([FromRoute(Name = "run_id")] string runId, HttpContext http, IControlPlaneStore store, PipelineRunService runs, CancellationToken cancellationToken)
    {
        var run = await FindRunAsync(runId, http, store, cancellationToken);
        if (run.IsFinished)
        {
            throw new ConflictException("Run finished", $"Run {runId} already ended {run.Status}.");
        }

        var updated = await runs.CancelAsync(runId, run.OrgSlug, cancellationToken);
        return TypedResults.Accepted($"/api/v1/pipelines/runs/{runId}", RunResponse.From(updated));
    }

    public static async Task<Ok<ValidationResponse>> Validate(HttpRequest request, PipelineCatalog catalog, [FromQuery(Name = "path")] string? path = null)
    {
        using var reader = new StreamReader(request.Body);
        var yaml = await reader.ReadToEndAsync(request.HttpContext.RequestAborted);
        var pipelinePath = path ?? "validate/request";
        if (!PipelineCatalog.IsSafePath(pipelinePath))
        {
            throw RequestValidationException.For("path", "must be lowercase [a-z0-9_] segments separated by '/'.");
        }

        try
        {
            var pipeline = catalog.Validate(yaml, "request body", pipelinePath);
            return TypedResults.Ok(new ValidationResponse(true, pipelinePath, pipeline.PipelineId, [.. pipeline.Steps.Select(s => s.StepId)]));
        }
        catch (ConfigurationErrorException ex)
        {
            throw new InvalidConfigurationException(ex);
        }
    }

    public static async Task<Ok<ComprehensiveViewResponse>> Comprehensive(
        [FromRoute(Name = "org_slug")] string orgSlug, IControlPlaneStore store, CancellationToken cancellationToken,
        DateTimeOffset? since = null, int? limit = null, [FromQuery(Name = "page_token")] string? pageToken = null)
    {
        var org = RouteArguments.Org(orgSlug);
        var page = await store.ListRunsAsync(new RunQuery(org, null, null, since, PageSize(limit, 20), pageToken), cancellationToken);
        var runs = new List<ComprehensiveRun>();
        foreach (var run in page.Runs)
        {
            var steps = await store.ListStepsAsync(run.PipelineLoggingId, org, cancellationToken);
            var dq = await store.ListDqResultsAsync(run.PipelineLoggingId, org, cancellationToken);
            runs.Add(new ComprehensiveRun(RunResponse.From(run), [.. steps.Select(StepResponse.From)], [.. dq.Select(DqResultResponse.From)]));
        }

        return TypedResults.Ok(new ComprehensiveViewResponse(org.Value, runs, page.NextPageToken));
    }

    private static async Task<Results<Accepted<RunAcceptedResponse>, Ok<RunAcceptedResponse>>> SubmitAsync(
        string orgSlug, string path, Dictionary<string, string>? body, HttpContext http, PipelineRunService runs, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var key = http.Request.Headers["Idempotency-Key"].ToString();
        var outcome = await runs.SubmitAsync(org, path, body ?? [], http.ToActor(), key.Length == 0 ? null : key, cancellationToken);
        var r = outcome.Run;
        var response = new RunAcceptedResponse(r.PipelineLoggingId, r.PipelineId, r.PipelinePath, org.Value, r.Status, r.Parameters, r.CreatedAt, $"/api/v1/pipelines/runs/{r.PipelineLoggingId}");
        return outcome.Created ? TypedResults.Accepted(response.StatusUrl, response) : TypedResults.Ok(response);
    }

    /// <summary>The org a request may see: an org key sees only its own (asking for another is 403); root sees the one asked for, or all.</summary>
    private static OrgSlug? ScopeOf(HttpContext http, string? orgText)
    {
        OrgSlug? asked = null;
        if (orgText is not null)
        {
            asked = OrgSlug.TryParse(orgText, out var parsed) ? parsed : throw RequestValidationException.For("org", $"'{orgText}' is not an org slug.");
        }

        if (http.User.IsRoot())
        {
            return asked;
        }

        var own = OrgSlug.From(http.User.OrgOf()!);
        return asked is null || asked == own ? own : throw new ForbiddenException("This API key belongs to another organization.");
    }

    private static async Task<PipelineRunRecord> FindRunAsync(string runId, HttpContext http, IControlPlaneStore store, CancellationToken cancellationToken)
    {
        var scope = http.User.IsRoot() ? (OrgSlug?)null : OrgSlug.From(http.User.OrgOf()!);
        return (runId.Length <= 64 ? await store.FindRunAsync(runId, scope, cancellationToken) : null)
            ?? throw new ResourceNotFoundException("Run", runId.Length > 64 ? runId[..64] : runId);
    }

    private static int PageSize(int? limit, int fallback = DefaultPageSize) =>
        limit switch
        {
            null => fallback,
            >= 1 and <= MaxPageSize => limit.Value,
            _ => throw RequestValidationException.For("limit", $"must be between 1 and {MaxPageSize}."),
        };
}

/// <summary>A caller may not see what it asked for (another org's data through a query parameter).</summary>
public sealed class ForbiddenException(string message) : ConvergenceException(message)
{
    public override string Title => "Forbidden";
}

/// <summary>A pipeline submitted for validation is invalid; carries the file, line and field.</summary>
public sealed class InvalidConfigurationException(ConfigurationErrorException error) : ConvergenceException(error.Message, error)
{
    public ConfigurationErrorException Error { get; } = error;

    public override string Title => "Invalid pipeline configuration";
}
