using Convergence.Core.Organizations;

namespace Convergence.Core.Storage;

/// <summary>
/// The org data warehouse: datasets (units of isolation) holding tables created from <see cref="TableSchema"/>s.
/// </summary>
/// <remarks>
/// <para>Every call names its dataset with a <see cref="DatasetRef"/>, which carries the owning org, so no call can
/// touch org data without saying whose. The embedded adapter keeps one SQLite file per dataset; a PostgreSQL adapter
/// maps a dataset to a schema and BigQuery to a dataset.</para>
/// <para>Creation calls are idempotent and report whether they created anything.</para>
/// </remarks>
public interface IWarehouse
{
    /// <summary>A short name for logs and health checks, such as <c>sqlite</c>.</summary>
    string Kind { get; }

    Task<bool> DatasetExistsAsync(DatasetRef dataset, CancellationToken cancellationToken);

    /// <summary>Creates the dataset; returns <c>false</c> when it already existed.</summary>
    Task<bool> CreateDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken);

    /// <summary>Drops the dataset and every table in it; no-op when it does not exist.</summary>
    Task DropDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken);

    Task<IReadOnlyList<string>> ListTablesAsync(DatasetRef dataset, CancellationToken cancellationToken);

    /// <summary>
    /// Creates the table (and its keys and indexes) unless it exists, or brings an existing table up to
    /// <paramref name="schema"/> (see <see cref="TableSchemaDiff"/>: missing NULLABLE columns added, REQUIRED columns
    /// the schema makes NULLABLE relaxed, missing indexes created); returns <c>true</c> only when the table was created.
    /// </summary>
    /// <exception cref="TableSchemaConflictException">
    /// The existing table differs in a way evolution does not apply (a type change, a tightening, a dropped or a new
    /// REQUIRED column); nothing was changed.
    /// </exception>
    Task<bool> EnsureTableAsync(DatasetRef dataset, TableSchema schema, CancellationToken cancellationToken);

    Task DropTableAsync(DatasetRef dataset, string table, CancellationToken cancellationToken);

    /// <summary>
    /// Starts an atomic write to <paramref name="schema"/>'s table (created if missing, evolved as by
    /// <see cref="EnsureTableAsync"/> if it exists) under <paramref name="spec"/>'s write mode. Dialect: the adapter runs the portable SQL of <see cref="IWarehouseWrite.WriteQueryAsync"/>.
    /// </summary>
    Task<IWarehouseWrite> BeginWriteAsync(DatasetRef dataset, TableSchema schema, WriteSpec spec, CancellationToken cancellationToken);

    /// <summary>Runs a read-only query in the dataset and returns its rows.</summary>
    Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(DatasetRef dataset, SqlQuery query, int maxRows, CancellationToken cancellationToken);

    /// <summary>
    /// The rows of a query one at a time, read as they are enumerated: memory does not grow with the result (a step
    /// normalising a whole billing export). The read sees one consistent snapshot; the connection is held until the
    /// enumeration ends or is disposed.
    /// </summary>
    IAsyncEnumerable<IReadOnlyDictionary<string, object?>> StreamAsync(DatasetRef dataset, SqlQuery query, CancellationToken cancellationToken);

    Task<long> CountRowsAsync(DatasetRef dataset, string table, CancellationToken cancellationToken);

    /// <summary>Checks the warehouse is reachable and new datasets can be written, without leaving anything behind.</summary>
    Task<WarehouseProbe> ProbeAsync(CancellationToken cancellationToken);
}

/// <summary>The result of <see cref="IWarehouse.ProbeAsync"/>.</summary>
public sealed record WarehouseProbe(bool Reachable, bool Writable, string? Problem);
