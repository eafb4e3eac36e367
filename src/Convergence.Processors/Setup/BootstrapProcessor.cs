using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.Setup;

/// <summary>
/// <c>setup.initial.onetime_bootstrap</c>: creates the central <c>organizations</c> dataset and its tables from the
/// JSON schemas in <c>config.schemas</c>. Idempotent; the run parameters <c>force_recreate_dataset</c> and
/// <c>force_recreate_tables</c> recreate (destructive).
/// </summary>
internal sealed class BootstrapProcessor(IControlPlaneStore store, ConfigsFolder configs) : IProcessor
{
    public const string Type = "setup.initial.onetime_bootstrap";

    public string PsType => Type;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var schemas = TableSchema.LoadDirectory(configs.Resolve(context.RequireConfigString("schemas")));
        var options = new BootstrapOptions(context.BoolParameter("force_recreate_dataset"), context.BoolParameter("force_recreate_tables"));
        var outcome = await store.BootstrapAsync(schemas, options, cancellationToken);
        return new StepResult(
            outcome.TablesCreated.Count,
            new Dictionary<string, object?>
            {
                ["dataset_created"] = outcome.DatasetCreated,
                ["tables_created"] = outcome.TablesCreated,
                ["tables_existing"] = outcome.TablesExisting,
                ["force_recreate_dataset"] = options.ForceRecreateDataset,
                ["force_recreate_tables"] = options.ForceRecreateTables,
            },
            outcome);
    }
}
