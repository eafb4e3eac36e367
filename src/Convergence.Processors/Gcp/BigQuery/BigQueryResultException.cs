using Convergence.Core.Errors;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>
/// A BigQuery result that does not fit the step's destination: a column the table needs is missing from the result (or
/// the result has one the table lacks), or a value does not convert to its column's type. Names the job, row and column;
/// not retried, and nothing is written.
/// </summary>
public sealed class BigQueryResultException(string message) : ConvergenceException(message)
{
    public override string Title => "BigQuery result does not fit the destination";
}
