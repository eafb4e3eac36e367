using Convergence.Core.Keys;

namespace Convergence.Core.Tests.Keys;

public sealed class RootKeyTests
{
    private const string Secret = "root-Secret-123_xyz";

    private readonly RootKey _root = new(Secret);

    [Fact]
    public void Matches_ExactSecret_ReturnsTrue()
    {
        _root.Matches(Secret).ShouldBeTrue();
        _root.Matches(new string(Secret.ToCharArray())).ShouldBeTrue();
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("root")]
    [InlineData("root-Secret-123_xy")]
    [InlineData("root-Secret-123_xyz ")]
    [InlineData(" root-Secret-123_xyz")]
    [InlineData("root-Secret-123_xyzz")]
    [InlineData("root-Secret-123_xyz\n")]
    [InlineData("ROOT-SECRET-123_XYZ")]
    [InlineData("root-secret-123_xyz")]
    [InlineData("xroot-Secret-123_xyz")]
    public void Matches_AnythingButTheExactSecret_ReturnsFalse(string? presented)
    {
        _root.Matches(presented).ShouldBeFalse();
    }

    [Fact]
    public void Constructor_NullOrEmptySecret_Throws()
    {
        Should.Throw<ArgumentNullException>(() => new RootKey(null!));
        Should.Throw<ArgumentException>(() => new RootKey(string.Empty));
    }

    [Fact]
    public void ToString_Always_HidesTheSecret()
    {
        _root.ToString().ShouldNotContain(Secret);
        _root.ToString().ShouldNotContain("root-");
    }
}
