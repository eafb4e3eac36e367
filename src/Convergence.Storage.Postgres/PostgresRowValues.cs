using Convergence.Core.Storage;

namespace Convergence.Storage.Postgres;

/// <summary>
/// How the PostgreSQL stores' columns read into the shared rows of <see cref="RunRows"/>' namespace (<c>RunRow&lt;DateTime?&gt;</c>
/// and the like): <c>timestamptz</c> as UTC <see cref="DateTime"/>s, booleans as <see cref="bool"/>.
/// </summary>
internal static class PostgresRowValues
{
    /// <summary>A timestamp column read back (null stays null).</summary>
    public static readonly Func<DateTime?, DateTimeOffset?> Timestamp = PostgresValues.FromTimestamp;

    /// <summary>A boolean column read back.</summary>
    public static readonly Func<bool, bool> Flag = value => value;
}
