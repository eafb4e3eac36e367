using Npgsql;

namespace Convergence.Storage.Postgres;

/// <summary>Conversions between .NET values and the PostgreSQL columns of the JSON table schemas.</summary>
internal static class PostgresValues
{
    /// <summary>SQLSTATE of a unique or primary key violation.</summary>
    public const string UniqueViolation = "23505";

    /// <summary>A timestamp parameter for a <c>timestamptz</c> column (Npgsql wants UTC).</summary>
    public static DateTime? Timestamp(DateTimeOffset? value) => value?.UtcDateTime;

    /// <summary>A <c>timestamptz</c> read back (Npgsql returns UTC <see cref="DateTime"/>s).</summary>
    public static DateTimeOffset FromTimestamp(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));

    public static DateTimeOffset? FromTimestamp(DateTime? value) => value is { } v ? FromTimestamp(v) : null;

    /// <summary>A <c>date</c> parameter (midnight, unspecified kind: Npgsql writes the date part).</summary>
    public static DateTime Date(DateOnly value) => value.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);

    public static bool IsUniqueViolation(Exception ex) => ex is PostgresException { SqlState: UniqueViolation };
}
