using Convergence.Core.Organizations;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>Where the embedded adapter keeps its files: one SQLite database per dataset under the data folder.</summary>
public sealed class SqliteDatasetFiles
{
    public SqliteDatasetFiles(string dataDirectory)
    {
        DataDirectory = Path.GetFullPath(dataDirectory);
        DatasetsDirectory = Path.Combine(DataDirectory, "datasets");
        Directory.CreateDirectory(DatasetsDirectory);
    }

    /// <summary>
    /// Page size of new warehouse dataset files, in bytes: 64 KiB, SQLite's largest (its default, kept for the control
    /// plane's small transactions, is 4 KiB). Warehouse tables are loaded in bulk and scanned; a 1M-row GCP billing
    /// export load spent ~20% less CPU than with 4 KiB pages (fewer pages to allocate, balance, log and checkpoint).
    /// Files created before keep the page size they were created with.
    /// </summary>
    internal const int WarehousePageSize = 65536;

    public string DataDirectory { get; }

    public string DatasetsDirectory { get; }

    public string PathOf(DatasetRef dataset) => Path.Combine(DatasetsDirectory, dataset.Name + ".sqlite");

    public string ConnectionString(DatasetRef dataset, SqliteOpenMode mode = SqliteOpenMode.ReadWrite) =>
        new SqliteConnectionStringBuilder
        {
            DataSource = PathOf(dataset),
            Mode = mode,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();

    /// <summary>
    /// Opens a connection; <see cref="SqliteOpenMode.ReadWriteCreate"/> creates the file, in WAL mode, with pages of
    /// <paramref name="pageSize"/> bytes if given (a file that exists keeps its own).
    /// </summary>
    public async Task<SqliteConnection> OpenAsync(DatasetRef dataset, CancellationToken cancellationToken, SqliteOpenMode mode = SqliteOpenMode.ReadWrite, int? pageSize = null)
    {
        var connection = new SqliteConnection(ConnectionString(dataset, mode));
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var pragma = connection.CreateCommand();

            // WAL with synchronous=NORMAL: commits append to the log without an fsync each (the log is synced at
            // checkpoints). A crash of the process loses nothing; a power cut may roll back the last commits, never
            // corrupt the file. journal_mode is stored in the file; synchronous is per connection.
            // A page size is fixed when the file is created (before WAL mode is written into it); see WarehousePageSize.
            // The control plane's connections keep up to 32 MiB of pages each (SQLite's default is 2 MiB, allocated as
            // pages are read): with thousands of orgs its schedules, queue and quota tables outgrow 2 MiB, and a trigger
            // or a claim then reads evicted pages back from the file (trigger bench: 7% less CPU).
            pragma.CommandText = mode == SqliteOpenMode.ReadWriteCreate
                ? $"{(pageSize is { } size ? $"PRAGMA page_size={size}; " : string.Empty)}PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                : dataset == DatasetRef.Central ? "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;" : "PRAGMA synchronous=NORMAL;";
            await pragma.ExecuteNonQueryAsync(cancellationToken);

            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Deletes the dataset's files after closing pooled connections to them.</summary>
    public void Delete(DatasetRef dataset)
    {
        var path = PathOf(dataset);

        // Pools are keyed by the whole connection string, so clear the pool of every mode this class opens with;
        // a pooled connection left on a deleted file would keep writing into it.
        foreach (var mode in new[] { SqliteOpenMode.ReadWrite, SqliteOpenMode.ReadWriteCreate })
        {
            using var connection = new SqliteConnection(ConnectionString(dataset, mode));
            SqliteConnection.ClearPool(connection);
        }

        foreach (var file in new[] { path, path + "-wal", path + "-shm", path + "-journal" })
        {
            File.Delete(file);
        }
    }
}
