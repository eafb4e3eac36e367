namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A clock that only moves when a test moves it. Only <see cref="GetUtcNow"/> is faked: timers and timestamps
/// (step timeouts, stopwatches) keep using the system, so nothing waits on this clock.
/// </summary>
public sealed class FakeTimeProvider : TimeProvider
{
    /// <summary>A fixed, obviously-not-now start, so code that mixes the real clock with this one shows up.</summary>
    public static readonly DateTimeOffset DefaultStart = new(2030, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private readonly Lock _gate = new();
    private DateTimeOffset _now;

    public FakeTimeProvider()
        : this(DefaultStart)
    {
    }

    public FakeTimeProvider(DateTimeOffset start) => _now = start.ToUniversalTime();

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    /// <summary>Moves the clock forward by <paramref name="delta"/>.</summary>
    public void Advance(TimeSpan delta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delta, TimeSpan.Zero);
        lock (_gate)
        {
            _now += delta;
        }
    }
}
