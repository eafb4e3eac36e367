using Convergence.Core.Storage;

namespace Convergence.Storage.Sqlite;

/// <summary>
/// How the SQLite stores' columns read into the shared rows of <see cref="RunRows"/>' namespace (<c>RunRow&lt;string?&gt;</c> and
/// the like): timestamps are <see cref="SqliteSchema.TimestampFormat"/> text, booleans 0/1 integers.
/// </summary>
internal static class SqliteRowValues
{
    /// <summary>A timestamp column read back (null stays null).</summary>
    public static readonly Func<string?, DateTimeOffset?> Timestamp = SqliteSchema.ParseTimestampOrNull;

    /// <summary>A boolean column read back.</summary>
    public static readonly Func<long, bool> Flag = value => value != 0;
}
