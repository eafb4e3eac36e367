using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.TestSupport;

/// <summary>Generators shared by the property tests.</summary>
public static class Gens
{
    public const string SlugAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789_";

    /// <summary>Characters that must never appear in a slug: uppercase, punctuation, unicode look-alikes, whitespace.</summary>
    public static readonly char[] ForbiddenChars =
    [
        'A', 'M', 'Z', '-', '.', '/', '\\', ':', '@', '{', '}', '$', '\'', '"', '%',
        ' ', '\t', '\n', '\r', '\0', '\u00a0', '\u200b', '\u2028',
        'é', 'ß', 'ı', '\u212a' /* Kelvin sign, lowercases to 'k' */, '\u0430' /* Cyrillic a */,
        '\uff41' /* fullwidth a */, '\u0663' /* Arabic-Indic 3 */, '\ud83d', '\ude00',
    ];

    public static Gen<char> SlugChar { get; } = Gen.Elements(SlugAlphabet.ToCharArray());

    public static Gen<char> ForbiddenChar { get; } = Gen.Elements(ForbiddenChars);

    /// <summary>Strings of <paramref name="chars"/> with a length in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Gen<string> StringOf(Gen<char> chars, int min, int max) =>
        Gen.Choose(min, max).SelectMany(n => Gen.ArrayOf(chars, n)).Select(a => new string(a));

    /// <summary>Valid slugs, some containing "_api_" or ending in "_api" to stress key parsing.</summary>
    public static Gen<string> ValidSlug { get; } = Gen.OneOf(
        StringOf(SlugChar, 3, 50),
        Gen.Zip(StringOf(SlugChar, 0, 20), StringOf(SlugChar, 0, 20))
            .Select(t => t.Item1 + "_api_" + t.Item2),
        StringOf(SlugChar, 0, 40).Select(s => s + "_api"),
        StringOf(SlugChar, 0, 40).Select(s => s + "_api_"));
}
