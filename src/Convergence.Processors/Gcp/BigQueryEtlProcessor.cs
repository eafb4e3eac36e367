using Convergence.Core.Pipelines;

namespace Convergence.Processors.Gcp;

/// <summary>
/// <c>gcp.bq_etl</c>: runs the step's source query and writes its rows to the step's destination with its write mode.
/// </summary>
/// <remarks>
/// <para><c>config.source: warehouse</c> (the default) runs <c>config.query</c> in the org's dataset on the configured
/// warehouse. Dialects: a config may carry <c>query_sqlite</c>, <c>query_postgres</c> or <c>query_bigquery</c> beside a
/// portable <c>query</c>; the one matching the warehouse wins. Placeholders in the SQL are bound parameters.</para>
/// <para>Queries against a tenant's own BigQuery project (<c>source: bigquery</c>) and billing-export files arrive with
/// the GCP integration; naming them today is a configuration error, not a silent no-op.</para>
/// </remarks>
internal sealed class BigQueryEtlProcessor : IProcessor
{
    public const string Type = "gcp.bq_etl";

    public string PsType => Type;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var source = context.Config.TryGetValue("source", out var s) && s is string text ? text : "warehouse";
        if (source != "warehouse")
        {
            throw new InvalidOperationException($"Step '{context.Step.StepId}': config.source '{source}' is not available in this build; use 'warehouse'.");
        }

        var destination = context.RequireDestination();
        var query = context.Sql();
        var rows = await destination.WriteQueryAsync(query, cancellationToken);
        return StepResult.Of(rows, ("source", source), ("table", destination.Schema.Name), ("write_mode", destination.Spec.Mode.ToConfigName()));
    }
}
