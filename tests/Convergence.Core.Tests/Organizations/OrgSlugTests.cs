using System.Text.RegularExpressions;
using Convergence.Core.Organizations;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Organizations;

public sealed class OrgSlugTests
{
    // \z, not $: '$' also matches before a trailing '\n', which the slug must reject.
    private static readonly Regex Reference = new("^[a-z0-9_]{3,50}\\z", RegexOptions.None);

    private static readonly Gen<string> MixedAlphabetString =
        Gens.StringOf(Gen.Frequency((4, Gens.SlugChar), (1, Gens.ForbiddenChar)), 0, 55);

    [Fact]
    public void Parse_ArbitraryString_SucceedsIffReferenceRegexMatches()
    {
        var arbitrary = ArbMap.Default.ArbFor<string>().Generator.Select(s => s ?? string.Empty);
        var gen = Gen.OneOf(arbitrary, Gens.StringOf(Gens.SlugChar, 0, 55), MixedAlphabetString);

        Prop.ForAll(Arb.From(gen), text =>
                OrgSlug.Parse(text).IsSuccess == Reference.IsMatch(text)
                && OrgSlug.TryParse(text, out _) == Reference.IsMatch(text))
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Parse_ValidSlug_RoundtripsValue()
    {
        Prop.ForAll(Arb.From(Gens.ValidSlug), text =>
            {
                var result = OrgSlug.Parse(text);
                return result.IsSuccess && result.Error is null && result.Value.Value == text && result.Value.ToString() == text;
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Parse_StringWithForbiddenCharacter_IsRejected()
    {
        // A valid-length slug with one to three forbidden characters spliced in at random positions.
        var gen =
            from body in Gens.StringOf(Gens.SlugChar, 2, 47)
            from bad in Gen.ArrayOf(Gens.ForbiddenChar, 1).Or(Gen.ArrayOf(Gens.ForbiddenChar, 3))
            from positions in Gen.ArrayOf(Gen.Choose(0, 47), bad.Length)
            select Splice(body, bad, positions);

        Prop.ForAll(Arb.From(gen), text =>
                text.IndexOfAny(Gens.ForbiddenChars) >= 0 && !OrgSlug.Parse(text).IsSuccess && OrgSlug.Parse(text).Error is not null)
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Parse_MixedAlphabetString_RejectedWheneverAForbiddenCharacterIsPresent()
    {
        Prop.ForAll(Arb.From(MixedAlphabetString), text =>
                text.IndexOfAny(Gens.ForbiddenChars) < 0 || !OrgSlug.Parse(text).IsSuccess)
            .Check(PropertyConfig.Default);
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("a", false)]
    [InlineData("ab", false)]
    [InlineData("abc", true)]
    [InlineData("acme_corp", true)]
    [InlineData("___", true)]
    [InlineData("123", true)]
    [InlineData("../etc", false)]
    [InlineData("Acme", false)]
    [InlineData("ACME", false)]
    [InlineData("acme\n", false)]
    [InlineData("\nacme", false)]
    [InlineData("acme corp", false)]
    [InlineData("acme-corp", false)]
    [InlineData("acme.corp", false)]
    [InlineData("acme/corp", false)]
    [InlineData("acme\0", false)]
    [InlineData("\u212acme", false)]
    [InlineData("acm\u00e9", false)]
    public void Parse_Example_MatchesExpectation(string text, bool valid)
    {
        var result = OrgSlug.Parse(text);

        result.IsSuccess.ShouldBe(valid);
        Reference.IsMatch(text).ShouldBe(valid);
        if (valid)
        {
            result.Value.Value.ShouldBe(text);
        }
        else
        {
            result.Error.ShouldNotBeNullOrWhiteSpace();
            Should.Throw<InvalidOperationException>(() => result.Value);
        }
    }

    [Fact]
    public void Parse_Null_IsRejected()
    {
        var result = OrgSlug.Parse(null);

        result.IsSuccess.ShouldBeFalse();
        result.Error.ShouldBe("org_slug is required.");
        OrgSlug.TryParse(null, out var slug).ShouldBeFalse();
        slug.ShouldBeNull();
    }

    [Theory]
    [InlineData(50, true)]
    [InlineData(51, false)]
    [InlineData(200, false)]
    public void Parse_Length_BoundedAt50(int length, bool valid)
    {
        var text = new string('a', length);

        OrgSlug.Parse(text).IsSuccess.ShouldBe(valid);
    }

    [Fact]
    public void Parse_TooLong_ErrorReportsLength()
    {
        OrgSlug.Parse(new string('a', 51)).Error!.ShouldContain("got 51");
    }

    [Fact]
    public void From_InvalidText_ThrowsFormatException()
    {
        Should.Throw<FormatException>(() => OrgSlug.From("Bad-Slug"));
    }

    [Fact]
    public void From_ValidText_ReturnsSlug()
    {
        OrgSlug.From("acme_corp").Value.ShouldBe("acme_corp");
    }

    [Fact]
    public void Equality_SameText_SlugsAreEqual()
    {
        OrgSlug.From("acme").ShouldBe(OrgSlug.From("acme"));
        OrgSlug.From("acme").ShouldNotBe(OrgSlug.From("acme2"));
    }

    [Fact]
    public void Pattern_Constant_AgreesWithParseOnTrailingNewlineOnlyWhenZAnchored()
    {
        // Documents why the reference uses \z: the published Pattern's '$' would accept "acme\n" while Parse rejects it.
        Regex.IsMatch("acme\n", OrgSlug.Pattern, RegexOptions.None).ShouldBeTrue();
        OrgSlug.Parse("acme\n").IsSuccess.ShouldBeFalse();
    }

    private static string Splice(string body, char[] bad, int[] positions)
    {
        var chars = new List<char>(body);
        for (var i = 0; i < bad.Length; i++)
        {
            chars.Insert(Math.Min(positions[i], chars.Count), bad[i]);
        }

        return new string([.. chars]);
    }
}
