using Convergence.Api.Auth;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Processors.Setup;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>Organizations: dry-run, onboarding, profile, offboarding and API keys.</summary>
public static class OrganizationsApi
{
    public const string DryRunPipeline = "setup/organizations/dryrun";
    public const string OnboardingPipeline = "setup/organizations/onboarding";
    public const string ValidationPipeline = "gcp/example/dryrun";

    public static IEndpointRouteBuilder MapOrganizationsApi(this IEndpointRouteBuilder app)
    {
        var root = app.MapGroup("/api/v1/organizations").WithTags("Organizations").RequireAuthorization(ConvergenceAuth.RootPolicy);
        root.MapPost("/dryrun", DryRun).WithSummary("Check an onboarding request; creates nothing.");
        root.MapPost("/onboard", Onboard).WithSummary("Create an organization, its dataset and its first API key (returned once).");
        root.MapPatch("/{org_slug}", Update).WithSummary("Change an organization's plan or status.");
        root.MapDelete("/{org_slug}", Offboard).WithSummary("Offboard: revoke keys, mark DELETED, optionally drop the dataset.");
        root.MapPost("/{org_slug}/api-keys", IssueKey).WithSummary("Issue a new key; with rotate, the old keys expire after the grace period.");
        root.MapGet("/{org_slug}/api-keys", ListKeys).WithSummary("List keys (fingerprints only, never secrets).");
        root.MapDelete("/{org_slug}/api-keys/{key_id}", RevokeKey).WithSummary("Revoke one key.");

        app.MapGroup("/api/v1/organizations").WithTags("Organizations").RequireAuthorization(ConvergenceAuth.OrgPolicy)
            .MapGet("/{org_slug}", Get).WithSummary("An organization's profile, subscription and usage (root key or the org's own key).");
        return app;
    }

    public static async Task<Ok<DryRunResponse>> DryRun(OrganizationBody body, HttpContext http, PipelineExecutor executor, IControlPlaneStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var actor = http.ToActor();
        var request = body.ToRequest();
        var org = OrgSlug.TryParse(request.OrgSlug, out var slug) ? slug : null;
        var result = await executor.RunAsync(new PipelineRunRequest(DryRunPipeline, org, request.ToParameters(), actor, RunTrigger.Admin), cancellationToken);
        var report = result.Output<DryRunReport>("validate_request");
        if (await store.IsBootstrappedAsync(cancellationToken))
        {
            await store.RecordAuditAsync(
                actor.Audit("organization.dryrun", org, report.ReadyForOnboarding ? AuditOutcome.Success : AuditOutcome.Failure, time.GetUtcNow(), new Dictionary<string, object?>
                {
                    ["checks_failed"] = report.ChecksFailed,
                    ["pipeline_logging_id"] = result.PipelineLoggingId,
                }),
                cancellationToken);
        }

        return TypedResults.Ok(DryRunResponse.From(report, result.PipelineLoggingId));
    }

    public static async Task<Created<OnboardResponse>> Onboard(OrganizationBody body, HttpContext http, PipelineExecutor executor, IControlPlaneStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var actor = http.ToActor();
        var request = body.ToRequest();
        var org = OrgSlug.TryParse(request.OrgSlug, out var slug) ? slug : null;
        PipelineRunResult result;
        try
        {
            result = await executor.RunAsync(new PipelineRunRequest(OnboardingPipeline, org, request.ToParameters(), actor, RunTrigger.Admin), cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && org is not null)
        {
            await RecordFailureAsync(store, actor.Audit("organization.onboard", org, AuditOutcome.Failure, time.GetUtcNow(), new Dictionary<string, object?>
            {
                ["error_class"] = ex.GetType().Name,
                ["error_message"] = ex is ConvergenceException ? ex.Message : "internal error",
            }));
            throw;
        }

        var onboarded = result.Output<OnboardingResult>("onboard_organization");
        var validation = await RunValidationPipelineAsync(executor, onboarded.Profile.OrgSlug, actor, cancellationToken);
        var response = new OnboardResponse(
            onboarded.Profile.OrgSlug.Value,
            onboarded.Profile.CompanyName,
            onboarded.Profile.AdminEmail,
            onboarded.Profile.Status,
            onboarded.ApiKey.Key.Secret,
            onboarded.ApiKey.Record.OrgApiKeyId,
            onboarded.ApiKey.Record.Fingerprint,
            onboarded.DatasetId,
            onboarded.DatasetCreated,
            onboarded.TablesCreated,
            SubscriptionResponse.From(onboarded.Subscription),
            result.PipelineLoggingId,
            validation,
            "Store the api_key now: it is shown only once.");
        return TypedResults.Created($"/api/v1/organizations/{response.OrgSlug}", response);
    }

    public static async Task<Ok<OrganizationResponse>> Get([FromRoute(Name = "org_slug")] string orgSlug, OrganizationOverviewCache organizations, CancellationToken cancellationToken) =>
        TypedResults.Ok(OrganizationResponse.From(await organizations.GetAsync(RouteArguments.Org(orgSlug), cancellationToken)));

    public static async Task<Ok<OrganizationResponse>> Update(
        [FromRoute(Name = "org_slug")] string orgSlug, OrganizationPatchBody body, HttpContext http, OrganizationAdministration admin, OrgCacheGenerations caches, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var updated = await admin.UpdateAsync(org, body.SubscriptionPlan, body.Status, http.ToActor(), cancellationToken);
        caches.Invalidate(org);
        return TypedResults.Ok(OrganizationResponse.From(updated));
    }

    public static async Task<Ok<OffboardResponse>> Offboard(
        [FromRoute(Name = "org_slug")] string orgSlug, HttpContext http, OrganizationAdministration admin, OrgCacheGenerations caches, CancellationToken cancellationToken,
        [FromQuery(Name = "drop_data")] bool dropData = false)
    {
        var org = RouteArguments.Org(orgSlug);
        var result = await admin.OffboardAsync(org, dropData, http.ToActor(), cancellationToken);
        caches.Invalidate(org);
        return TypedResults.Ok(new OffboardResponse(result.OrgSlug.Value, result.Status, result.KeysRevoked, result.DatasetId, result.DataDropped));
    }

    public static async Task<Created<ApiKeyIssuedResponse>> IssueKey(
        [FromRoute(Name = "org_slug")] string orgSlug,
        [FromBody(EmptyBodyBehavior = Microsoft.AspNetCore.Mvc.ModelBinding.EmptyBodyBehavior.Allow)] ApiKeyIssueBody? body,
        HttpContext http,
        OrganizationAdministration admin,
        OrgCacheGenerations caches,
        CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var rotate = body?.Rotate ?? true;
        var grace = body?.GracePeriodSeconds ?? 0;
        if (grace is < 0 or > 30L * 24 * 3600)
        {
            throw RequestValidationException.For("grace_period_seconds", $"must be between 0 and {30L * 24 * 3600}.");
        }

        var result = await admin.IssueKeyAsync(org, rotate, TimeSpan.FromSeconds(grace), body?.ExpiresAt, http.ToActor(), cancellationToken);
        caches.Invalidate(org);
        var record = result.Issued.Record;
        var message = result.PreviousKeysAffected == 0
            ? "Store the api_key now: it is shown only once."
            : $"Store the api_key now: it is shown only once. {result.PreviousKeysAffected} previous key(s) stop working at {result.PreviousKeysExpireAt:O}.";
        return TypedResults.Created(
            $"/api/v1/organizations/{org}/api-keys",
            new ApiKeyIssuedResponse(org.Value, result.Issued.Key.Secret, record.OrgApiKeyId, record.Fingerprint, record.CreatedAt, record.ExpiresAt, result.PreviousKeysAffected, result.PreviousKeysExpireAt, message));
    }

    public static async Task<Ok<ApiKeyListResponse>> ListKeys([FromRoute(Name = "org_slug")] string orgSlug, OrganizationAdministration admin, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var now = time.GetUtcNow();
        var keys = await admin.ListKeysAsync(org, cancellationToken);
        return TypedResults.Ok(new ApiKeyListResponse(org.Value, [.. keys.Select(k => ApiKeyResponse.From(k, now))]));
    }

    public static async Task<Ok<ApiKeyRevokedResponse>> RevokeKey(
        [FromRoute(Name = "org_slug")] string orgSlug, [FromRoute(Name = "key_id")] string keyId, HttpContext http, OrganizationAdministration admin, OrgCacheGenerations caches, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        await admin.RevokeKeyAsync(org, keyId, http.ToActor(), cancellationToken);
        caches.Invalidate(org);
        return TypedResults.Ok(new ApiKeyRevokedResponse(org.Value, keyId, true));
    }

    /// <summary>
    /// Runs the credential-free example pipeline for today, proving the new dataset takes writes end to end. Its
    /// failure is reported, not fatal: the org exists, and the run's steps say what went wrong.
    /// </summary>
    private static async Task<ValidationRunResponse> RunValidationPipelineAsync(PipelineExecutor executor, OrgSlug org, Actor actor, CancellationToken cancellationToken)
    {
        try
        {
            var run = await executor.RunAsync(new PipelineRunRequest(ValidationPipeline, org, new Dictionary<string, string>(), actor, RunTrigger.Admin), cancellationToken);
            return new ValidationRunResponse(ValidationPipeline, run.PipelineLoggingId, run.Status, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new ValidationRunResponse(ValidationPipeline, null, RunStatus.Failed, ex.Message);
        }
    }


    private static async Task RecordFailureAsync(IControlPlaneStore store, AuditEntry entry)
    {
        if (await store.IsBootstrappedAsync(CancellationToken.None))
        {
            await store.RecordAuditAsync(entry, CancellationToken.None);
        }
    }
}
