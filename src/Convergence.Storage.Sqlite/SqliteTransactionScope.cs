using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>Owns a connection and its open transaction: committed explicitly, rolled back when disposed uncommitted.</summary>
internal sealed class SqliteTransactionScope(SqliteConnection connection, SqliteTransaction transaction) : IAsyncDisposable
{
    private bool _committed;

    public async Task CommitAsync(CancellationToken cancellationToken)
    {
        await transaction.CommitAsync(cancellationToken);
        _committed = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_committed)
        {
            await transaction.RollbackAsync();
        }

        await transaction.DisposeAsync();
        await connection.DisposeAsync();
    }
}
