using System.Diagnostics.CodeAnalysis;

namespace Convergence.Core.Storage;

/// <summary>
/// Validation for identifiers that reach SQL text (table and column names): they can never be bound as
/// parameters, so they are restricted to <c>^[a-z_][a-z0-9_]{0,62}$</c> and quoted by the adapters.
/// </summary>
public static class SqlIdentifier
{
    public const string Pattern = "^[a-z_][a-z0-9_]{0,62}$";

    /// <summary>The longest identifier: PostgreSQL truncates longer ones.</summary>
    public const int MaxLength = 63;

    public static bool IsValid([NotNullWhen(true)] string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength || name[0] is >= '0' and <= '9')
        {
            return false;
        }

        foreach (var c in name)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '_'))
            {
                return false;
            }
        }

        return true;
    }

    public static string Require(string? name, string what) =>
        IsValid(name) ? name : throw new ArgumentException($"'{name}' is not a valid {what} ({Pattern}).", nameof(name));
}
