using System.Diagnostics.CodeAnalysis;

namespace Convergence.Core.Organizations;

/// <summary>
/// A validated tenant identifier: 3–50 characters of <c>[a-z0-9_]</c>.
/// </summary>
/// <remarks>
/// Validated once at the edge; everything downstream holds an <see cref="OrgSlug"/>, never a raw string,
/// so a slug that reaches storage (file names, schema names, SQL identifiers) is always safe.
/// </remarks>
public readonly record struct OrgSlug
{
    public const int MinLength = 3;
    public const int MaxLength = 50;
    public const string Pattern = "^[a-z0-9_]{3,50}$";

    private OrgSlug(string value) => Value = value;

    public string Value { get; }

    /// <summary>Parses <paramref name="text"/>, returning the reason when it is not a valid slug.</summary>
    public static ParseResult<OrgSlug> Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return ParseResult<OrgSlug>.Failure("org_slug is required.");
        }

        if (text.Length is < MinLength or > MaxLength)
        {
            return ParseResult<OrgSlug>.Failure($"org_slug must be {MinLength} to {MaxLength} characters long; got {text.Length}.");
        }

        foreach (var c in text)
        {
            if (!IsSlugChar(c))
            {
                return ParseResult<OrgSlug>.Failure($"org_slug may contain only lowercase letters, digits and '_' ({Pattern}).");
            }
        }

        return ParseResult<OrgSlug>.Success(new OrgSlug(text));
    }

    public static bool TryParse(string? text, [NotNullWhen(true)] out OrgSlug? slug)
    {
        var result = Parse(text);
        slug = result.IsSuccess ? result.Value : null;
        return result.IsSuccess;
    }

    /// <summary>Parses a slug that must be valid, such as one read back from the store.</summary>
    public static OrgSlug From(string text) => Parse(text).GetValueOrThrow();

    internal static bool IsSlugChar(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_';

    public override string ToString() => Value ?? string.Empty;
}
