using System.Text.Json;
using Convergence.Api.Auth;
using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Processors.Integrations;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>
/// An org's provider connections (SPEC §6): setup and validate run the pipelines
/// <c>configs/integrations/{provider}/setup|validate.yml</c>; status and delete read and change the credential rows.
/// Credentials go in, never out: responses, problems, logs, run logs and audit rows carry only non-secret facts.
/// </summary>
public static class IntegrationsApi
{
    public static IEndpointRouteBuilder MapIntegrationsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/integrations/{org_slug}").WithTags("Integrations").RequireAuthorization(ConvergenceAuth.OrgPolicy);
        group.MapGet("", List).WithSummary("Every provider's integration status for the org.");
        group.MapGet("/{provider}", Get).WithSummary("One provider's integration status (gcp, openai, anthropic, deepseek).");
        group.MapPost("/{provider}/setup", Setup)
            .WithSummary("Check a credential live with the provider, encrypt and store it, seed the org's price tables. 422 when the provider refuses it.");
        group.MapPost("/{provider}/validate", Validate).WithSummary("Check the stored credential live again and record the outcome.");
        group.MapDelete("/{provider}", Delete).WithSummary("Remove the org's credential for the provider (its ciphertext is erased).");
        return app;
    }

    public static async Task<Ok<IntegrationListResponse>> List(
        [FromRoute(Name = "org_slug")] string orgSlug, IControlPlaneStore store, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var stored = (await store.ListActiveCredentialsAsync(org, cancellationToken)).ToDictionary(c => c.Provider);
        return TypedResults.Ok(new IntegrationListResponse(
            org.Value, [.. IntegrationProvider.All.Select(p => IntegrationResponse.From(p, stored.GetValueOrDefault(p)))]));
    }

    public static async Task<Ok<IntegrationResponse>> Get(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, IControlPlaneStore store, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var p = Provider(provider);
        return TypedResults.Ok(IntegrationResponse.From(p, await store.FindActiveCredentialAsync(org, p, cancellationToken)));
    }

    public static async Task<Created<IntegrationSetupResponse>> Setup(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, IntegrationSetupBody body, HttpContext http,
        PipelineExecutor executor, IControlPlaneStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var p = Provider(provider);
        var parameters = body.ToParameters();
        using var secrets = RunSecrets.With(RunSecrets.Credential, body.CredentialText(p));
        var actor = http.ToActor();
        var result = await RunAsync(executor, store, time, actor, "integration.setup", org, p,
            new PipelineRunRequest($"integrations/{p.RouteName}/setup", org, parameters, actor, RunTrigger.Api) { Secrets = secrets }, cancellationToken);

        var check = result.Output<CredentialCheck>("validate_credential");
        var credential = result.Output<IntegrationCredential>("store_credential");
        var seeded = result.Steps.TryGetValue("seed_tables", out var seed) && seed.Output is IReadOnlyDictionary<string, int> rows
            ? rows
            : new Dictionary<string, int>();
        var response = new IntegrationSetupResponse(
            true, org.Value, p.RouteName, credential.ValidationStatus, Message(p, check, "stored"), IntegrationResponse.From(p, credential),
            result.PipelineLoggingId, seeded);
        return TypedResults.Created($"/api/v1/integrations/{org}/{p.RouteName}", response);
    }

    public static async Task<Ok<IntegrationValidateResponse>> Validate(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, HttpContext http,
        PipelineExecutor executor, IControlPlaneStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var p = Provider(provider);
        var actor = http.ToActor();
        using var secrets = new RunSecrets();
        var result = await RunAsync(executor, store, time, actor, "integration.validate", org, p,
            new PipelineRunRequest($"integrations/{p.RouteName}/validate", org, new Dictionary<string, string>(), actor, RunTrigger.Api) { Secrets = secrets }, cancellationToken);

        var check = result.Output<CredentialCheck>("validate_credential");
        var current = await store.FindActiveCredentialAsync(org, p, cancellationToken);
        return TypedResults.Ok(new IntegrationValidateResponse(
            check.Status == CredentialStatus.Valid, org.Value, p.RouteName, check.Status, Message(p, check, "kept"),
            IntegrationResponse.From(p, current), result.PipelineLoggingId));
    }

    public static async Task<Ok<IntegrationDeletedResponse>> Delete(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, HttpContext http, IControlPlaneStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = await RequireOrgAsync(store, orgSlug, cancellationToken);
        var p = Provider(provider);
        var existing = await store.FindActiveCredentialAsync(org, p, cancellationToken)
            ?? throw new ResourceNotFoundException("Integration", $"{org}/{p.RouteName}");
        var now = time.GetUtcNow();
        await store.DeactivateCredentialAsync(org, p, now, cancellationToken);
        await store.RecordAuditAsync(
            http.ToActor().Audit("integration.delete", org, AuditOutcome.Success, now, new Dictionary<string, object?>
            {
                ["provider"] = p.RouteName,
                ["credential_id"] = existing.CredentialId,
            }),
            cancellationToken);
        return TypedResults.Ok(new IntegrationDeletedResponse(org.Value, p.RouteName, existing.CredentialId, true));
    }

    /// <summary>Runs an integration pipeline and audits its outcome (never the credential).</summary>
    private static async Task<PipelineRunResult> RunAsync(
        PipelineExecutor executor, IControlPlaneStore store, TimeProvider time, Actor actor, string action, OrgSlug org, IntegrationProvider provider,
        PipelineRunRequest request, CancellationToken cancellationToken)
    {
        PipelineRunResult result;
        try
        {
            result = await executor.RunAsync(request, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await store.RecordAuditAsync(
                actor.Audit(action, org, AuditOutcome.Failure, time.GetUtcNow(), new Dictionary<string, object?>
                {
                    ["provider"] = provider.RouteName,
                    ["error_class"] = ex.GetType().Name,
                    ["error_message"] = ex is ConvergenceException ? ex.Message : "internal error",
                }),
                CancellationToken.None);
            throw;
        }

        var check = result.Output<CredentialCheck>("validate_credential");
        await store.RecordAuditAsync(
            actor.Audit(action, org, AuditOutcome.Success, time.GetUtcNow(), new Dictionary<string, object?>
            {
                ["provider"] = provider.RouteName,
                ["validation_status"] = check.Status,
                ["pipeline_logging_id"] = result.PipelineLoggingId,
            }),
            cancellationToken);
        return result;
    }

    private static string Message(IntegrationProvider provider, CredentialCheck check, string verb) => check.Status switch
    {
        CredentialStatus.Valid => $"{provider.RouteName} accepted the credential; it is {verb} encrypted.",
        CredentialStatus.Pending => $"{check.Reason} Status PENDING until a validate call succeeds.",
        _ => check.Reason ?? $"{provider.RouteName} refused the credential.",
    };

    private static IntegrationProvider Provider(string route) =>
        IntegrationProvider.TryFromRoute(route, out var provider) ? provider : throw new ResourceNotFoundException("Provider", route.Length > 40 ? route[..40] : route);

    private static async Task<OrgSlug> RequireOrgAsync(IControlPlaneStore store, string orgSlug, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var profile = await store.FindOrganizationAsync(org, cancellationToken);
        return profile is null || profile.Status == OrgStatus.Deleted ? throw new ResourceNotFoundException("Organization", org.Value) : org;
    }
}

/// <summary>
/// A credential to connect. <c>credential</c> is the API key (a string) or, for <c>gcp</c>, the service-account key
/// (the JSON object, or its text). It is never echoed back, not even in errors.
/// </summary>
public sealed record IntegrationSetupBody
{
    public JsonElement? Credential { get; init; }

    public string? CredentialName { get; init; }

    public Dictionary<string, string>? Metadata { get; init; }

    internal string CredentialText(IntegrationProvider provider)
    {
        var text = Credential switch
        {
            { ValueKind: JsonValueKind.String } s => s.GetString(),
            { ValueKind: JsonValueKind.Object } o when provider == IntegrationProvider.Gcp => o.GetRawText(),
            null or { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined } => null,
            _ => throw RequestValidationException.For("credential", provider == IntegrationProvider.Gcp
                ? "must be the service-account key: a JSON object or its text."
                : "must be a string (the API key)."),
        };
        return string.IsNullOrWhiteSpace(text) ? throw RequestValidationException.For("credential", "is required.") : text;
    }

    internal Dictionary<string, string> ToParameters()
    {
        var errors = new Dictionary<string, string[]>();
        if (CredentialName is { } name && (name.Length > 200 || name.Any(char.IsControl)))
        {
            errors["credential_name"] = ["must be at most 200 characters without control characters."];
        }

        if (Metadata is { Count: > 50 })
        {
            errors["metadata"] = ["may hold at most 50 entries."];
        }

        foreach (var (key, value) in Metadata ?? [])
        {
            if (key.Length is 0 or > 100 || value is null || value.Length > 500)
            {
                errors[$"metadata.{(key.Length > 100 ? key[..100] : key)}"] = ["keys must be 1-100 characters and values strings of at most 500."];
            }
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!string.IsNullOrWhiteSpace(CredentialName))
        {
            parameters[IntegrationParameters.CredentialName] = CredentialName.Trim();
        }

        if (Metadata is { Count: > 0 })
        {
            parameters[IntegrationParameters.Metadata] = JsonSerializer.Serialize(Metadata, ApiJsonContext.Default.DictionaryStringString);
        }

        return parameters;
    }
}

/// <summary>An integration's state, without the credential.</summary>
public sealed record IntegrationResponse(
    string Provider,
    bool Configured,
    string ValidationStatus,
    string? CredentialId,
    string? CredentialName,
    DateTimeOffset? LastValidatedAt,
    string? LastError,
    IReadOnlyDictionary<string, string>? Metadata,
    string? KeyVersion,
    DateTimeOffset? CreatedAt,
    DateTimeOffset? UpdatedAt)
{
    public const string NotConfigured = "NOT_CONFIGURED";

    public static IntegrationResponse From(IntegrationProvider provider, IntegrationCredential? c) => c is null
        ? new(provider.RouteName, false, NotConfigured, null, null, null, null, null, null, null, null)
        : new(provider.RouteName, true, c.ValidationStatus, c.CredentialId, c.CredentialName, c.LastValidatedAt, c.LastError, c.Metadata, c.KeyVersion, c.CreatedAt, c.UpdatedAt);
}

public sealed record IntegrationListResponse(string OrgSlug, IReadOnlyList<IntegrationResponse> Integrations);

public sealed record IntegrationSetupResponse(
    bool Success,
    string OrgSlug,
    string Provider,
    string ValidationStatus,
    string Message,
    IntegrationResponse Integration,
    string PipelineLoggingId,
    IReadOnlyDictionary<string, int> SeededTables);

public sealed record IntegrationValidateResponse(
    bool Success,
    string OrgSlug,
    string Provider,
    string ValidationStatus,
    string Message,
    IntegrationResponse Integration,
    string PipelineLoggingId);

public sealed record IntegrationDeletedResponse(string OrgSlug, string Provider, string CredentialId, bool Deleted);
