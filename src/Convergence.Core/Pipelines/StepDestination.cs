using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.Core.Pipelines;

/// <summary>
/// A step's destination table, opened on first write. The processor writes; the executor alone runs the data-quality
/// checks and commits, so a failed or rejected step leaves the table as it was.
/// </summary>
public sealed class StepDestination(IWarehouse warehouse, DatasetRef dataset, TableSchema schema, WriteSpec spec) : IAsyncDisposable
{
    private IWarehouseWrite? _write;

    public DatasetRef Dataset => dataset;

    public TableSchema Schema => schema;

    public WriteSpec Spec => spec;

    /// <summary>The open write, if the processor wrote anything.</summary>
    internal IWarehouseWrite? Write => _write;

    public async Task<long> WriteRowsAsync(IAsyncEnumerable<IReadOnlyDictionary<string, object?>> rows, CancellationToken cancellationToken) =>
        await (await OpenAsync(cancellationToken)).WriteRowsAsync(rows, cancellationToken);

    public async Task<long> WriteRowsAsync(IEnumerable<IReadOnlyDictionary<string, object?>> rows, CancellationToken cancellationToken) =>
        await WriteRowsAsync(rows.ToAsyncEnumerable(), cancellationToken);

    /// <summary>Bulk rows by position; see <see cref="IWarehouseWrite.WriteRecordsAsync"/>.</summary>
    public async Task<long> WriteRecordsAsync(IReadOnlyList<string> columns, IEnumerable<object?[]> rows, CancellationToken cancellationToken) =>
        await (await OpenAsync(cancellationToken)).WriteRecordsAsync(columns, rows, cancellationToken);

    public async Task<long> WriteQueryAsync(SqlQuery query, CancellationToken cancellationToken) =>
        await (await OpenAsync(cancellationToken)).WriteQueryAsync(query, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_write is not null)
        {
            await _write.DisposeAsync();
        }
    }

    private async Task<IWarehouseWrite> OpenAsync(CancellationToken cancellationToken)
    {
        if (_write is null)
        {
            await warehouse.CreateDatasetAsync(dataset, cancellationToken);
            _write = await warehouse.BeginWriteAsync(dataset, schema, spec, cancellationToken);
        }

        return _write;
    }
}
