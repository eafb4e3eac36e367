using Convergence.Core.Scheduling;
using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>
/// Run-queue wake-ups between instances over PostgreSQL's <c>LISTEN</c>/<c>NOTIFY</c> on the control-plane database.
/// Publishing borrows a pooled connection for one <c>pg_notify</c>; listening holds its own unpooled connection (a
/// <c>LISTEN</c> is session state, which must not travel with a pooled connection to other users).
/// </summary>
public sealed class PostgresRunQueueBroadcast(PostgresControlPlaneSource source, string listenConnectionString) : IRunQueueBroadcast
{
    /// <summary>The notification channel (one per control-plane database).</summary>
    public const string Channel = "convergence_run_queue";

    public async Task PublishAsync(string sender, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT pg_notify(@channel, @sender)", connection);
        command.Parameters.AddWithValue("channel", Channel);
        command.Parameters.AddWithValue("sender", sender);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task ListenAsync(string self, Action onRemote, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(listenConnectionString);
        connection.Notification += (_, e) =>
        {
            if (!string.Equals(e.Payload, self, StringComparison.Ordinal))
            {
                onRemote();
            }
        };
        await connection.OpenAsync(cancellationToken);
        await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
        {
            await listen.ExecuteNonQueryAsync(cancellationToken);
        }

        onRemote();
        try
        {
            while (true)
            {
                await connection.WaitAsync(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>The listener's connection string: the store's, unpooled, with TCP keepalives so a dead server is noticed.</summary>
    public static string ListenerConnectionString(string storeConnection) =>
        new NpgsqlConnectionStringBuilder(storeConnection) { Pooling = false, KeepAlive = 30 }.ConnectionString;
}
