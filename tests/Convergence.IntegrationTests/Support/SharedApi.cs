namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A class fixture holding one API for tests that only read (xunit needs a fixture with a single constructor).
/// Bootstrapped once; tests sharing it must not depend on each other's writes.
/// </summary>
public sealed class SharedApi : IAsyncLifetime
{
    public ConvergenceApiFactory Factory { get; } = new();

    public async Task InitializeAsync() => await Factory.BootstrapAsync();

    public async Task DisposeAsync() => await Factory.DisposeAsync();
}
