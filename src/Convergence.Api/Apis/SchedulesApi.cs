using Convergence.Api.Auth;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>The org's pipeline schedules (<c>org_pipeline_configs</c>): cron in an IANA zone, parameters, on/off.</summary>
public static class SchedulesApi
{
    /// <summary>Schedules an org may hold.</summary>
    public const int MaxSchedulesPerOrg = 100;

    /// <summary>Parameters a schedule may carry, and the longest value.</summary>
    public const int MaxParameters = 50;

    public const int MaxParameterValueLength = 1000;

    /// <summary>Config ids are GUIDs; anything much longer names no schedule.</summary>
    private const int MaxConfigIdLength = 64;

    public static IEndpointRouteBuilder MapSchedulesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/schedules/{org_slug}").WithTags("Schedules").RequireAuthorization(ConvergenceAuth.OrgPolicy);
        group.MapGet("", List).WithSummary("The org's schedules.");
        group.MapPost("", Create).WithSummary("Schedule a pipeline: cron_schedule (5 fields) in timezone (IANA), with parameters; 201 with next_run_time.");
        group.MapGet("/{config_id}", Get).WithSummary("One schedule.");
        group.MapPut("/{config_id}", Replace).WithSummary("Replace every field of a schedule; next_run_time is recomputed.");
        group.MapDelete("/{config_id}", Delete).WithSummary("Delete a schedule.");
        return app;
    }

    public static async Task<Ok<ScheduleListResponse>> List(
        [FromRoute(Name = "org_slug")] string orgSlug, IControlPlaneStore store, IScheduleStore schedules, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var all = await schedules.ListAsync(org, cancellationToken);
        return TypedResults.Ok(new ScheduleListResponse(org.Value, [.. all.Select(ScheduleResponse.From)]));
    }

    public static async Task<Ok<ScheduleResponse>> Get(
        [FromRoute(Name = "org_slug")] string orgSlug, [FromRoute(Name = "config_id")] string configId,
        IControlPlaneStore store, IScheduleStore schedules, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        return TypedResults.Ok(ScheduleResponse.From(await FindAsync(schedules, org, configId, cancellationToken)));
    }

    public static async Task<Created<ScheduleResponse>> Create(
        [FromRoute(Name = "org_slug")] string orgSlug, ScheduleBody body, HttpContext http,
        IControlPlaneStore store, IScheduleStore schedules, PipelineCatalog catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var valid = body.Validate(catalog);
        if (await schedules.CountAsync(org, cancellationToken) >= MaxSchedulesPerOrg)
        {
            throw new ConflictException("Schedule limit reached", $"Organization '{org}' already has {MaxSchedulesPerOrg} schedules, the most it may hold; delete one first.");
        }

        var now = time.GetUtcNow();
        var config = new ScheduleConfig(
            Guid.CreateVersion7(now).ToString(), org, valid.Pipeline, valid.Schedule.Expression, valid.Schedule.Timezone, valid.Parameters,
            valid.IsActive, valid.IsActive ? valid.Schedule.Next(now) : null, null, now, now);
        await schedules.CreateAsync(config, cancellationToken);
        await AuditAsync(store, http, "schedule.create", config, now, cancellationToken);
        return TypedResults.Created($"/api/v1/schedules/{org}/{config.ConfigId}", ScheduleResponse.From(config));
    }

    public static async Task<Ok<ScheduleResponse>> Replace(
        [FromRoute(Name = "org_slug")] string orgSlug, [FromRoute(Name = "config_id")] string configId, ScheduleBody body, HttpContext http,
        IControlPlaneStore store, IScheduleStore schedules, PipelineCatalog catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var existing = await FindAsync(schedules, org, configId, cancellationToken);
        var valid = body.Validate(catalog);
        var now = time.GetUtcNow();
        var config = existing with
        {
            Pipeline = valid.Pipeline,
            CronSchedule = valid.Schedule.Expression,
            Timezone = valid.Schedule.Timezone,
            Parameters = valid.Parameters,
            IsActive = valid.IsActive,
            NextRunTime = valid.IsActive ? valid.Schedule.Next(now) : null,
            UpdatedAt = now,
        };
        if (!await schedules.UpdateAsync(config, cancellationToken))
        {
            throw new ResourceNotFoundException("Schedule", configId);
        }

        await AuditAsync(store, http, "schedule.update", config, now, cancellationToken);
        return TypedResults.Ok(ScheduleResponse.From(config));
    }

    public static async Task<Ok<ScheduleDeletedResponse>> Delete(
        [FromRoute(Name = "org_slug")] string orgSlug, [FromRoute(Name = "config_id")] string configId, HttpContext http,
        IControlPlaneStore store, IScheduleStore schedules, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var existing = await FindAsync(schedules, org, configId, cancellationToken);
        if (!await schedules.DeleteAsync(org, existing.ConfigId, cancellationToken))
        {
            throw new ResourceNotFoundException("Schedule", configId);
        }

        await AuditAsync(store, http, "schedule.delete", existing, time.GetUtcNow(), cancellationToken);
        return TypedResults.Ok(new ScheduleDeletedResponse(org.Value, existing.ConfigId, true));
    }

    private static async Task<OrgSlug> RequireOrgAsync(IControlPlaneStore store, string orgSlug, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var profile = await store.FindOrganizationAsync(org, cancellationToken);
        return profile is null || profile.Status == OrgStatus.Deleted ? throw new ResourceNotFoundException("Organization", org.Value) : org;
    }

    private static async Task<ScheduleConfig> FindAsync(IScheduleStore schedules, OrgSlug org, string configId, CancellationToken cancellationToken) =>
        (configId.Length <= MaxConfigIdLength ? await schedules.FindAsync(org, configId, cancellationToken) : null)
        ?? throw new ResourceNotFoundException("Schedule", configId.Length > MaxConfigIdLength ? configId[..MaxConfigIdLength] : configId);

    private static Task AuditAsync(IControlPlaneStore store, HttpContext http, string action, ScheduleConfig config, DateTimeOffset at, CancellationToken cancellationToken) =>
        store.RecordAuditAsync(
            http.ToActor().Audit(action, config.OrgSlug, AuditOutcome.Success, at, new Dictionary<string, object?>
            {
                ["config_id"] = config.ConfigId,
                ["pipeline"] = config.Pipeline,
                ["cron_schedule"] = config.CronSchedule,
                ["timezone"] = config.Timezone,
                ["is_active"] = config.IsActive,
            }),
            cancellationToken);
}

/// <summary>
/// A schedule to create, or to replace one with (PUT replaces every field): <c>pipeline</c> (a path such as
/// <c>openai/usage_cost</c>), <c>cron_schedule</c> (5 fields), <c>timezone</c> (IANA), <c>parameters</c> (strings;
/// never <c>date</c>, <c>start_date</c> or <c>end_date</c>: each run gets <c>date</c> = its scheduled local date),
/// <c>is_active</c> (default true).
/// </summary>
public sealed record ScheduleBody
{
    public string? Pipeline { get; init; }

    public string? CronSchedule { get; init; }

    public string? Timezone { get; init; }

    public Dictionary<string, string>? Parameters { get; init; }

    public bool? IsActive { get; init; }

    /// <summary>Checks every field, reporting all problems at once (422, keyed by field).</summary>
    public ValidSchedule Validate(PipelineCatalog catalog)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var pipeline = FindPipeline(catalog, errors);
        Core.Scheduling.CronSchedule.TryCreate(CronSchedule, Timezone, out var schedule, out var scheduleErrors);
        foreach (var (field, problems) in scheduleErrors)
        {
            errors[field] = problems;
        }

        var parameters = Parameters ?? [];
        if (parameters.Count > SchedulesApi.MaxParameters)
        {
            errors["parameters"] = [$"has {parameters.Count} entries; at most {SchedulesApi.MaxParameters}."];
        }

        foreach (var (name, value) in parameters)
        {
            if (RunParameterRules.DateKeys.Contains(name))
            {
                errors[$"parameters.{name}"] = [$"a schedule cannot set '{name}': each scheduled run gets date = its scheduled day in the schedule's timezone."];
            }
            else if (value is null)
            {
                errors[$"parameters.{name}"] = ["must be a string, not null."];
            }
            else if (value.Length > SchedulesApi.MaxParameterValueLength)
            {
                errors[$"parameters.{name}"] = [$"is {value.Length} characters; at most {SchedulesApi.MaxParameterValueLength}."];
            }
        }

        if (pipeline is not null)
        {
            var unknown = RunParameterRules.UnknownParameters(pipeline, parameters.Keys.Where(k => !RunParameterRules.DateKeys.Contains(k)));
            foreach (var (name, problems) in unknown)
            {
                errors[$"parameters.{name}"] = problems;
            }
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        return new ValidSchedule(pipeline!.Path, schedule!, new Dictionary<string, string>(parameters, StringComparer.Ordinal), IsActive ?? true);
    }

    private PipelineDefinition? FindPipeline(PipelineCatalog catalog, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrWhiteSpace(Pipeline))
        {
            errors["pipeline"] = ["is required: a pipeline path such as 'openai/usage_cost' (GET /api/v1/pipelines lists them)."];
            return null;
        }

        if (PipelineCatalog.IsOrgRunnable(Pipeline))
        {
            try
            {
                return catalog.Get(Pipeline);
            }
            catch (ResourceNotFoundException)
            {
            }
        }

        var shown = Pipeline.Length > 100 ? Pipeline[..100] : Pipeline;
        errors["pipeline"] = [$"'{shown}' is not a pipeline an org can run; GET /api/v1/pipelines lists them (such as 'openai/usage_cost')."];
        return null;
    }
}

/// <summary>A schedule body that passed validation.</summary>
public sealed record ValidSchedule(string Pipeline, Core.Scheduling.CronSchedule Schedule, IReadOnlyDictionary<string, string> Parameters, bool IsActive);

public sealed record ScheduleResponse(
    string ConfigId, string OrgSlug, string Pipeline, string CronSchedule, string Timezone, IReadOnlyDictionary<string, string> Parameters,
    bool IsActive, DateTimeOffset? NextRunTime, DateTimeOffset? LastRunTime, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static ScheduleResponse From(ScheduleConfig c) =>
        new(c.ConfigId, c.OrgSlug.Value, c.Pipeline, c.CronSchedule, c.Timezone, c.Parameters, c.IsActive, c.NextRunTime, c.LastRunTime, c.CreatedAt, c.UpdatedAt);
}

public sealed record ScheduleListResponse(string OrgSlug, IReadOnlyList<ScheduleResponse> Schedules);

public sealed record ScheduleDeletedResponse(string OrgSlug, string ConfigId, bool Deleted);
