using FsCheck;

namespace Convergence.Core.Tests.TestSupport;

/// <summary>Shared FsCheck settings: throw on failure so xunit reports it, with enough cases to hit edges.</summary>
public static class PropertyConfig
{
    public static Config Default { get; } = Config.QuickThrowOnFailure.WithMaxTest(500);
}
