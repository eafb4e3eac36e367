using Convergence.Core.Organizations;
using Convergence.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// Microsoft.Data.Sqlite pools are per process, keyed by connection string. Two factories on the same data folder
/// share them, so "restarting" the API inside one test process needs the pools of that folder cleared, as a real
/// process exit would. Only the named folder's pools are touched: other tests running in parallel keep theirs.
/// </summary>
public static class SqlitePools
{
    public static void ClearAsIfProcessRestarted(string dataDirectory, params string[] orgSlugs)
    {
        var files = new SqliteDatasetFiles(dataDirectory);
        var datasets = new List<DatasetRef> { DatasetRef.Central };
        datasets.AddRange(orgSlugs.Select(s => DatasetRef.ForOrg(OrgSlug.From(s), DeploymentEnvironment.Development)));
        foreach (var dataset in datasets)
        {
            foreach (var mode in new[] { SqliteOpenMode.ReadWrite, SqliteOpenMode.ReadWriteCreate })
            {
                using var connection = new SqliteConnection(files.ConnectionString(dataset, mode));
                SqliteConnection.ClearPool(connection);
            }
        }
    }
}
