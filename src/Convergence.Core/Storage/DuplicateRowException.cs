namespace Convergence.Core.Storage;

/// <summary>A write hit a primary or unique key that already exists. Adapters translate their driver's error to this.</summary>
public sealed class DuplicateRowException(string table, Exception? inner = null)
    : Exception($"A row with the same key already exists in {table}.", inner)
{
    public string Table { get; } = table;
}
