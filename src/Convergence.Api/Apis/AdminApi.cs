using Convergence.Api.Auth;
using Convergence.Core.Audit;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>Platform administration: bootstrap.</summary>
public static class AdminApi
{
    public const string BootstrapPipeline = "setup/bootstrap/pipeline";

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/admin").WithTags("Admin").RequireAuthorization(ConvergenceAuth.RootPolicy);
        group.MapPost("/bootstrap", Bootstrap)
            .WithSummary("Create the central organizations dataset and its tables (idempotent).")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        return app;
    }

    public static async Task<Ok<BootstrapResponse>> Bootstrap(
        [FromBody(EmptyBodyBehavior = Microsoft.AspNetCore.Mvc.ModelBinding.EmptyBodyBehavior.Allow)] BootstrapBody? body,
        HttpContext http,
        PipelineExecutor executor,
        IControlPlaneStore store,
        TimeProvider time,
        Pipelines.RunQueueSignal queueSignal,
        CancellationToken cancellationToken)
    {
        var actor = http.ToActor();
        var parameters = new Dictionary<string, string>
        {
            ["force_recreate_dataset"] = (body?.ForceRecreateDataset ?? false) ? "true" : "false",
            ["force_recreate_tables"] = (body?.ForceRecreateTables ?? false) ? "true" : "false",
        };
        var result = await executor.RunAsync(new PipelineRunRequest(BootstrapPipeline, null, parameters, actor, RunTrigger.Admin), cancellationToken);
        var outcome = result.Output<BootstrapOutcome>("create_central_dataset");
        queueSignal.Notify(); // the worker pool waits for the queue table to exist
        await store.RecordAuditAsync(
            actor.Audit("platform.bootstrap", null, AuditOutcome.Success, time.GetUtcNow(), new Dictionary<string, object?>
            {
                ["force_recreate_dataset"] = parameters["force_recreate_dataset"],
                ["force_recreate_tables"] = parameters["force_recreate_tables"],
                ["tables_created"] = outcome.TablesCreated.Count,
                ["pipeline_logging_id"] = result.PipelineLoggingId,
            }),
            cancellationToken);

        var message = outcome.TablesCreated.Count == 0
            ? $"Already bootstrapped: all {outcome.TablesExisting.Count} tables exist."
            : $"Created {outcome.TablesCreated.Count} table(s); {outcome.TablesExisting.Count} already existed.";
        return TypedResults.Ok(new BootstrapResponse("SUCCESS", outcome.DatasetCreated, outcome.TablesCreated, outcome.TablesExisting, message, result.PipelineLoggingId));
    }
}
