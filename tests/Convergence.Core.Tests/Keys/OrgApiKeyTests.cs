using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Keys;

public sealed partial class OrgApiKeyTests
{
    private static readonly OrgSlug Acme = OrgSlug.From("acme_corp");

    [GeneratedRegex("^(?<slug>[a-z0-9_]{3,50})_api_(?<random>[0-9A-Za-z]{32})\\z")]
    private static partial Regex GeneratedKeyShape();

    [GeneratedRegex("^[0-9a-f]{64}\\z")]
    private static partial Regex LowerHex64();

    [Fact]
    public void Generate_DefaultRandom_ProducesSlugApiAnd32Base62()
    {
        var key = OrgApiKey.Generate(Acme);

        var match = GeneratedKeyShape().Match(key.Secret);
        match.Success.ShouldBeTrue(key.Secret);
        match.Groups["slug"].Value.ShouldBe("acme_corp");
        key.Secret.ShouldStartWith("acme_corp" + OrgApiKey.Separator);
        key.Secret.Length.ShouldBe("acme_corp".Length + OrgApiKey.Separator.Length + OrgApiKey.GeneratedRandomLength);
        key.Org.ShouldBe(Acme);
    }

    [Fact]
    public void Parse_GeneratedKey_RoundtripsOrgSecretAndHash()
    {
        var key = OrgApiKey.Generate(Acme);

        var parsed = OrgApiKey.Parse(key.Secret);

        parsed.IsSuccess.ShouldBeTrue(parsed.Error);
        parsed.Value.Org.ShouldBe(key.Org);
        parsed.Value.Secret.ShouldBe(key.Secret);
        parsed.Value.Hash.ShouldBe(key.Hash);
        parsed.Value.Fingerprint.ShouldBe(key.Fingerprint);
    }

    [Fact]
    public void Hash_GeneratedKey_IsLowercaseHexSha256OfFullKey()
    {
        var key = OrgApiKey.Generate(Acme);

        var expected = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key.Secret)));

        key.Hash.ShouldBe(expected);
        LowerHex64().IsMatch(key.Hash).ShouldBeTrue(key.Hash);
        OrgApiKey.ComputeHash(key.Secret).ShouldBe(expected);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("héllo wörld ✓")]
    public void ComputeHash_ShortInput_MatchesSha256(string text)
    {
        OrgApiKey.ComputeHash(text).ShouldBe(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text))));
    }

    [Theory]
    [InlineData(256)]
    [InlineData(257)]
    [InlineData(5000)]
    public void ComputeHash_LongInput_MatchesSha256(int length)
    {
        // Crosses the 256-byte stackalloc threshold, including with multi-byte UTF-8.
        var ascii = new string('k', length);
        var multiByte = string.Concat(Enumerable.Repeat("é", length));

        OrgApiKey.ComputeHash(ascii).ShouldBe(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ascii))));
        OrgApiKey.ComputeHash(multiByte).ShouldBe(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(multiByte))));
    }

    [Fact]
    public void Fingerprint_GeneratedKey_IsLastFourCharacters()
    {
        var key = OrgApiKey.Generate(Acme);

        key.Fingerprint.Length.ShouldBe(OrgApiKey.FingerprintLength);
        key.Fingerprint.ShouldBe(key.Secret[^4..]);
    }

    [Fact]
    public void ToString_GeneratedKey_NeverContainsTheRandomPart()
    {
        for (var i = 0; i < 50; i++)
        {
            var key = OrgApiKey.Generate(Acme);
            var random = key.Secret[(key.Secret.LastIndexOf(OrgApiKey.Separator, StringComparison.Ordinal) + OrgApiKey.Separator.Length)..];

            var text = key.ToString();

            text.ShouldNotContain(random);
            text.ShouldNotContain(key.Secret);
            text.ShouldNotContain(random[..^OrgApiKey.FingerprintLength]);
            text.ShouldBe($"acme_corp_api_…{key.Fingerprint}");
            $"{key}".ShouldBe(text);
        }
    }

    [Theory]
    [InlineData(null, "empty")]
    [InlineData("", "empty")]
    [InlineData("acme_corp-abcdefghijklmnopqrstuvwxyz", "form")]
    [InlineData("acme_corpapiabcdefghijklmnop", "form")]
    [InlineData("acme_corp_api_abcdefghijklmno", "random part")]
    [InlineData("acme_corp_api_", "random part")]
    [InlineData("acme_corp_api_abcdefghijklmnop-", "base62")]
    [InlineData("acme_corp_api_abcdefghijklmnop_", "base62")]
    [InlineData("acme_corp_api_abcdefghijklmnop\n", "base62")]
    [InlineData("acme_corp_api_abcdéfghijklmnop", "base62")]
    [InlineData("acme_corp_api_abcdefghijklmn\uff10p", "base62")]
    [InlineData("Acme_api_abcdefghijklmnopqrstuvwxyz", "org slug")]
    [InlineData("ab_api_abcdefghijklmnopqrstuvwxyz", "org slug")]
    [InlineData("_api_abcdefghijklmnopqrstuvwxyz", "org slug")]
    [InlineData("../x_api_abcdefghijklmnopqrstuvwxyz", "org slug")]
    public void Parse_MalformedKey_IsRejectedWithReason(string? text, string reasonFragment)
    {
        var result = OrgApiKey.Parse(text);

        result.IsSuccess.ShouldBeFalse();
        result.Error.ShouldNotBeNull().ShouldContain(reasonFragment);
    }

    [Theory]
    [InlineData(15, false)]
    [InlineData(16, true)]
    [InlineData(128, true)]
    [InlineData(129, false)]
    public void Parse_RandomPartLength_Bounded16To128(int length, bool valid)
    {
        OrgApiKey.Parse("acme_api_" + new string('Z', length)).IsSuccess.ShouldBe(valid);
    }

    [Theory]
    [InlineData("my_api_co")]
    [InlineData("my_api")]
    [InlineData("api_api_api")]
    [InlineData("x_api_")]
    [InlineData("_api_api_")]
    public void Parse_SlugContainingApiSeparator_ParsesToTheRightOrg(string slug)
    {
        var org = OrgSlug.From(slug);
        var key = OrgApiKey.Generate(org);

        var parsed = OrgApiKey.Parse(key.Secret);

        parsed.IsSuccess.ShouldBeTrue(parsed.Error);
        parsed.Value.Org.ShouldBe(org);
        parsed.Value.Org.Value.ShouldBe(slug);
    }

    [Fact]
    public void Parse_HandWrittenKeyForSlugWithSeparator_ParsesToTheRightOrg()
    {
        var parsed = OrgApiKey.Parse("my_api_co_api_0123456789abcdefXYZ");

        parsed.IsSuccess.ShouldBeTrue(parsed.Error);
        parsed.Value.Org.Value.ShouldBe("my_api_co");
    }

    [Fact]
    public void Generate_TwoKeys_Differ()
    {
        Prop.ForAll(Arb.From(Gens.ValidSlug), slug =>
            {
                var org = OrgSlug.From(slug);
                return OrgApiKey.Generate(org).Secret != OrgApiKey.Generate(org).Secret;
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Generate_AnyValidSlug_ParsesBack()
    {
        Prop.ForAll(Arb.From(Gens.ValidSlug), slug =>
            {
                var org = OrgSlug.From(slug);
                var key = OrgApiKey.Generate(org);
                var parsed = OrgApiKey.Parse(key.Secret);
                return parsed.IsSuccess
                    && parsed.Value.Org == org
                    && parsed.Value.Secret == key.Secret
                    && parsed.Value.Hash == key.Hash
                    && GeneratedKeyShape().Match(key.Secret).Groups["slug"].Value == slug;
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Generate_FixedRandomSource_IsDeterministic()
    {
        // 250, 255 and 248 are >= 248 and must be rejected by the sampler; 62, 123 and 247 wrap modulo 62.
        byte[] sequence = [0, 250, 1, 255, 61, 248, 62, 123, 247, 36, 10];

        using var first = new FixedSequenceRandom(sequence);
        using var second = new FixedSequenceRandom(sequence);

        var a = OrgApiKey.Generate(Acme, first);
        var b = OrgApiKey.Generate(Acme, second);

        a.Secret.ShouldBe(b.Secret);
        a.Hash.ShouldBe(b.Hash);
        // Accepted bytes per cycle: 0,1,61,62,123,247,36,10 → '0','1','z','0','z','z','a','A'.
        a.Secret.ShouldBe("acme_corp_api_" + string.Concat(Enumerable.Repeat("01z0zzaA", 4)));
        OrgApiKey.Parse(a.Secret).IsSuccess.ShouldBeTrue();
    }

    [Fact]
    public void Generate_RandomSourceOfOnlyRejectedBytesThenValid_SkipsRejectedBytes()
    {
        byte[] sequence = [.. Enumerable.Repeat((byte)255, 40), 5];

        using var random = new FixedSequenceRandom(sequence);

        var key = OrgApiKey.Generate(Acme, random);

        key.Secret.ShouldBe("acme_corp_api_" + new string('5', 32));
    }

    /// <summary>A random source returning a fixed byte sequence, cycled.</summary>
    private sealed class FixedSequenceRandom(byte[] sequence) : RandomNumberGenerator
    {
        private int _next;

        public override void GetBytes(byte[] data) => GetBytes(data.AsSpan());

        public override void GetBytes(Span<byte> data)
        {
            for (var i = 0; i < data.Length; i++)
            {
                data[i] = sequence[_next];
                _next = (_next + 1) % sequence.Length;
            }
        }

        public override void GetNonZeroBytes(byte[] data) => throw new NotSupportedException();
    }
}
