using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Dapper;

namespace Convergence.Storage.Postgres;

/// <summary>The insert of a run row into <c>org_meta_pipeline_runs</c>, shared by the control-plane store and the run queue.</summary>
internal static class PostgresRuns
{
    /// <summary>Inserts a run row from <see cref="Args"/>; a second run with the org's idempotency key violates a unique key.</summary>
    public static readonly string InsertSql =
        $"INSERT INTO org_meta_pipeline_runs ({string.Join(", ", RunRows.Columns.Select(c => "\"" + c + "\""))}) " +
        $"VALUES ({string.Join(", ", RunRows.Columns.Select(c => c is "parameters" or "resolved_config" ? $"CAST(@{c} AS jsonb)" : "@" + c))})";

    /// <summary>The parameters of <see cref="InsertSql"/> for <paramref name="run"/>.</summary>
    public static DynamicParameters Args(PipelineRunRecord run)
    {
        var args = new DynamicParameters();
        foreach (var (column, value) in RunRows.Columns.Zip(RunRows.Values(run, t => PostgresValues.Timestamp(t))))
        {
            args.Add(column, value);
        }

        return args;
    }
}
