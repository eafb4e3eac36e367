using Convergence.Api.Auth;
using Convergence.Core.Kms;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>Platform administration of the KMS: key-encryption key rotation for the local key ring (root only).</summary>
public static class KmsAdminApi
{
    public static IEndpointRouteBuilder MapKmsAdminApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/admin/kms").WithTags("Admin").RequireAuthorization(ConvergenceAuth.RootPolicy);
        group.MapPost("/rotate", Rotate)
            .WithSummary("Add a key-encryption key version and re-wrap every stored credential and API key copy with it (local key ring only; safe to re-run).")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status409Conflict);
        return app;
    }

    public static async Task<Ok<KmsRotateResponse>> Rotate(
        [FromBody(EmptyBodyBehavior = Microsoft.AspNetCore.Mvc.ModelBinding.EmptyBodyBehavior.Allow)] KmsRotateBody? body,
        HttpContext http,
        KeyRotationService rotation,
        CancellationToken cancellationToken)
    {
        var result = await rotation.RotateAsync(http.ToActor(), body?.RewrapOnly ?? false, KeyRotationService.DefaultBatchSize, cancellationToken);
        return TypedResults.Ok(new KmsRotateResponse(
            result.KeyVersion, result.Rewrapped, result.Failed, result.AlreadyCurrent,
            [.. result.FailedRecords.Select(f => new KmsFailedRecord(Table(f.Table), f.RecordId, f.OrgSlug))]));
    }

    private static string Table(CiphertextTable table) => table switch
    {
        CiphertextTable.IntegrationCredentials => "org_integration_credentials",
        CiphertextTable.OrgApiKeys => "org_api_keys",
        _ => table.ToString(),
    };
}

/// <summary><c>rewrap_only</c>: finish an interrupted rotation without adding another key version.</summary>
public sealed record KmsRotateBody
{
    public bool? RewrapOnly { get; init; }
}

public sealed record KmsRotateResponse(int KeyVersion, int Rewrapped, int Failed, int AlreadyCurrent, IReadOnlyList<KmsFailedRecord> FailedRecords);

public sealed record KmsFailedRecord(string Table, string RecordId, string OrgSlug);
