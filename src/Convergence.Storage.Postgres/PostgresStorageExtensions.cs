using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>Registers the PostgreSQL adapter: one server shared by every service instance.</summary>
public static class PostgresStorageExtensions
{
    /// <summary>
    /// Uses PostgreSQL for the control plane (schema <c>organizations</c> of <paramref name="storeConnection"/>) and/or
    /// the warehouse (one schema per dataset of <paramref name="warehouseConnection"/>).
    /// </summary>
    public static IServiceCollection AddPostgresStorage(this IServiceCollection services, string? storeConnection, string? warehouseConnection)
    {
        if (storeConnection is not null)
        {
            // The control plane's tables live in the schema of the central dataset; unqualified names resolve there.
            // Every run goes through a dozen short statements on pooled connections (claim, run and step rows, completion):
            // - automatic preparation keeps their parse and plan on the server across pooled opens (unless the connection
            //   string chooses its own Max Auto Prepare);
            // - No Reset On Close skips the session reset Npgsql otherwise sends with each reopen. The control plane keeps
            //   no session state: its advisory locks are transaction-scoped, the search path is a startup parameter, and it
            //   never SETs, LISTENs (the run-queue listener has its own unpooled connection) or creates temporary tables.
            var builder = new NpgsqlConnectionStringBuilder(storeConnection) { SearchPath = Core.Organizations.DatasetRef.CentralName, NoResetOnClose = true };
            if (builder.MaxAutoPrepare == 0)
            {
                builder.MaxAutoPrepare = 64;
            }

            services.AddSingleton(new PostgresControlPlaneSource(NpgsqlDataSource.Create(builder.ConnectionString)));
            services.AddSingleton<Core.Storage.IControlPlaneStore, PostgresControlPlaneStore>();
            services.AddSingleton<Core.Scheduling.IScheduleStore, PostgresScheduleStore>();
            services.AddSingleton<Core.Scheduling.IRunQueueStore, PostgresRunQueueStore>();
            services.AddSingleton<Core.Scheduling.IRunQueueBroadcast>(sp => new PostgresRunQueueBroadcast(
                sp.GetRequiredService<PostgresControlPlaneSource>(), PostgresRunQueueBroadcast.ListenerConnectionString(storeConnection)));
        }

        if (warehouseConnection is not null)
        {
            services.AddSingleton(PostgresWarehouseSource.Create(warehouseConnection));
            services.AddSingleton<Core.Storage.IWarehouse, PostgresWarehouse>();
        }

        return services;
    }
}

/// <summary>The connection pool of the control-plane database.</summary>
public sealed record PostgresControlPlaneSource(NpgsqlDataSource DataSource);

/// <summary>The connection pool of the warehouse database.</summary>
public sealed record PostgresWarehouseSource(NpgsqlDataSource DataSource)
{
    /// <summary>Smallest write buffer of a warehouse connection: binary COPY sends a buffer at a time (Npgsql's default is 8 KiB).</summary>
    private const int WriteBufferBytes = 128 * 1024;

    /// <summary>
    /// A pool on <paramref name="connectionString"/> whose sessions run in UTC: slices compare timestamps with whole
    /// days, and a day means a UTC day on every adapter. Writes are buffered by at least <see cref="WriteBufferBytes"/>,
    /// so bulk loads go to the server in fewer, larger sends.
    /// </summary>
    public static PostgresWarehouseSource Create(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Timezone = "UTC" };
        builder.WriteBufferSize = Math.Max(builder.WriteBufferSize, WriteBufferBytes);
        return new(NpgsqlDataSource.Create(builder.ConnectionString));
    }
}
