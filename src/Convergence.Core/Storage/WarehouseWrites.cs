using Convergence.Core.Pipelines;

namespace Convergence.Core.Storage;

/// <summary>How one atomic write replaces what the destination table holds.</summary>
/// <param name="Keys">Row identity for <see cref="WriteMode.Upsert"/>; partition identity for <see cref="WriteMode.ReplacePartitions"/>.</param>
/// <param name="PartitionColumn">The date column of <see cref="WriteMode.MergePartition"/>.</param>
/// <param name="SliceStart">First day of the run's slice (inclusive).</param>
/// <param name="SliceEnd">Last day of the run's slice (inclusive).</param>
public sealed record WriteSpec(WriteMode Mode, IReadOnlyList<string> Keys, string? PartitionColumn, DateOnly? SliceStart, DateOnly? SliceEnd)
{
    public static WriteSpec Append { get; } = new(WriteMode.Append, [], null, null, null);

    /// <summary>Checks the spec against the table: keys and partition column must exist, a merge needs its slice.</summary>
    public void Validate(TableSchema schema)
    {
        foreach (var column in Keys.Append(PartitionColumn).OfType<string>())
        {
            if (schema.FindColumn(column) is null)
            {
                throw new ArgumentException($"'{column}' is not a column of {schema.Name}.");
            }
        }

        if (Mode is WriteMode.Upsert or WriteMode.ReplacePartitions && Keys.Count == 0)
        {
            throw new ArgumentException($"A {Mode.ToConfigName()} write into {schema.Name} needs keys.");
        }

        if (Mode == WriteMode.MergePartition && (PartitionColumn is null || SliceStart is null || SliceEnd is null))
        {
            throw new ArgumentException($"A merge_partition into {schema.Name} needs a partition column and the run's date slice.");
        }
    }
}

/// <summary>A SQL text with <c>@name</c> markers and the values bound to them. Values never become SQL text.</summary>
public sealed record SqlQuery(string Text, IReadOnlyDictionary<string, object?> Parameters);

/// <summary>
/// An open, atomic write to one table. Nothing is visible to readers until <see cref="CommitAsync"/>; disposing
/// without committing leaves the table exactly as it was.
/// </summary>
public interface IWarehouseWrite : IAsyncDisposable
{
    TableSchema Schema { get; }

    /// <summary>Writes rows (column name → value, converted from the schema's types).</summary>
    Task<long> WriteRowsAsync(IAsyncEnumerable<IReadOnlyDictionary<string, object?>> rows, CancellationToken cancellationToken);

    /// <summary>
    /// Writes rows given by position, for bulk loads: each array holds the values of <paramref name="columns"/> in that
    /// order (table columns not named are NULL), converted from the schema's types as for
    /// <see cref="WriteRowsAsync"/>. The enumeration may hand the same array for every row, refilled: the adapter
    /// copies what it keeps. No dictionary per row, so a file of millions of rows streams at the storage's pace.
    /// </summary>
    Task<long> WriteRecordsAsync(IReadOnlyList<string> columns, IEnumerable<object?[]> rows, CancellationToken cancellationToken);

    /// <summary>Writes the result of a query run in the same dataset; its columns are matched to the table's by name.</summary>
    Task<long> WriteQueryAsync(SqlQuery query, CancellationToken cancellationToken);

    /// <summary>
    /// Evaluates a data-quality check on what the table will hold after commit (the slice, for merge_partition).
    /// <paramref name="expressionParameters"/> are the values bound to the <c>@name</c> markers of an expression check.
    /// </summary>
    Task<DqObservation> EvaluateAsync(DqCheckDefinition check, IReadOnlyDictionary<string, object?> expressionParameters, CancellationToken cancellationToken);

    Task CommitAsync(CancellationToken cancellationToken);
}

/// <summary>What a data-quality check saw.</summary>
/// <param name="FailingSample">Up to a few offending rows (or values), for the DQ result row.</param>
public sealed record DqObservation(bool Passed, string ObservedValue, string? Threshold, IReadOnlyList<IReadOnlyDictionary<string, object?>> FailingSample);
