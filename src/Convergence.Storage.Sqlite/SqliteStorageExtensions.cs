using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.Storage.Sqlite;

/// <summary>Registers the embedded SQLite adapter.</summary>
public static class SqliteStorageExtensions
{
    /// <summary>Uses SQLite files under <paramref name="dataDirectory"/> for the control plane and/or the warehouse.</summary>
    public static IServiceCollection AddSqliteStorage(this IServiceCollection services, string dataDirectory, bool controlPlane, bool warehouse)
    {
        services.AddSingleton(new SqliteDatasetFiles(dataDirectory));
        if (controlPlane)
        {
            services.AddSingleton<IControlPlaneStore, SqliteControlPlaneStore>();
            services.AddSingleton<IScheduleStore, SqliteScheduleStore>();
            services.AddSingleton<IRunQueueStore, SqliteRunQueueStore>();
        }

        if (warehouse)
        {
            services.AddSingleton<IWarehouse, SqliteWarehouse>();
        }

        return services;
    }
}
