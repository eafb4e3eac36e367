namespace Convergence.IntegrationTests.Support;

/// <summary>Checks the manual clock the retry and timeout tests rely on.</summary>
public sealed class ManualTimeProviderTests
{
    private static readonly DateTimeOffset Start = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Advance_FiresDueTimersInOrderAtTheirDueTime()
    {
        var clock = new ManualTimeProvider(Start);
        var fired = new List<(string Name, DateTimeOffset At)>();
        using var late = clock.CreateTimer(_ => fired.Add(("late", clock.GetUtcNow())), null, TimeSpan.FromSeconds(5), Timeout.InfiniteTimeSpan);
        using var early = clock.CreateTimer(_ => fired.Add(("early", clock.GetUtcNow())), null, TimeSpan.FromSeconds(2), Timeout.InfiniteTimeSpan);

        clock.Advance(TimeSpan.FromSeconds(1));
        fired.ShouldBeEmpty();
        clock.Advance(TimeSpan.FromSeconds(10));

        fired.ShouldBe([("early", Start.AddSeconds(2)), ("late", Start.AddSeconds(5))]);
        clock.GetUtcNow().ShouldBe(Start.AddSeconds(11));
        clock.NextDueWithin(TimeSpan.FromDays(1)).ShouldBeNull("one-shot timers fire once");
    }

    [Fact]
    public void PeriodicTimer_FiresEveryPeriodUntilDisposed()
    {
        var clock = new ManualTimeProvider(Start);
        var count = 0;
        var timer = clock.CreateTimer(_ => count++, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

        clock.Advance(TimeSpan.FromSeconds(3.5));
        count.ShouldBe(3);
        timer.Dispose();
        clock.Advance(TimeSpan.FromSeconds(10));

        count.ShouldBe(3);
        timer.Change(TimeSpan.Zero, TimeSpan.Zero).ShouldBeFalse("a disposed timer cannot be restarted");
    }

    [Fact]
    public void CancellationTokenSourceWithDelay_CancelsOnlyWhenTheClockReachesTheDelay()
    {
        var clock = new ManualTimeProvider(Start);
        using var source = new CancellationTokenSource(TimeSpan.FromSeconds(30), clock);

        clock.Advance(TimeSpan.FromSeconds(29));
        source.IsCancellationRequested.ShouldBeFalse();
        clock.NextDueWithin(TimeSpan.FromSeconds(1)).ShouldBe(Start.AddSeconds(30));
        clock.Advance(TimeSpan.FromSeconds(1));

        source.IsCancellationRequested.ShouldBeTrue();
    }

    [Fact]
    public async Task TaskDelay_CompletesWhenAdvanced_AndWhenTimersChangeSignalsNewTimers()
    {
        var clock = new ManualTimeProvider(Start);
        var changed = clock.WhenTimersChange();

        var delay = Task.Delay(TimeSpan.FromMinutes(5), clock);

        await changed.WaitAsync(TimeSpan.FromSeconds(10));
        delay.IsCompleted.ShouldBeFalse();
        clock.NextDueWithin(TimeSpan.FromMinutes(5)).ShouldBe(Start.AddMinutes(5));
        clock.AdvanceTo(Start.AddMinutes(5));
        await delay.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
