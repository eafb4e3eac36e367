namespace Convergence.IntegrationTests.Support;

/// <summary>
/// A clock whose time and timers only move when a test moves them: <see cref="GetUtcNow"/> and every timer made by
/// <see cref="CreateTimer"/> (Polly's backoff delays, <c>new CancellationTokenSource(delay, time)</c> step timeouts,
/// <c>Task.Delay(delay, time)</c>, <c>PeriodicTimer</c>) follow <see cref="Advance"/>. Timestamps stay on the system
/// clock. Due timers fire synchronously on the thread that advances the clock, in due order.
/// </summary>
/// <remarks>A stand-in for Microsoft.Extensions.TimeProvider.Testing's FakeTimeProvider, which this build cannot use.</remarks>
public sealed class ManualTimeProvider : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now;
    private long _sequence;
    private TaskCompletionSource _changed = NewSignal();

    public ManualTimeProvider()
        : this(FakeTimeProvider.DefaultStart)
    {
    }

    public ManualTimeProvider(DateTimeOffset start) => _now = start.ToUniversalTime();

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new ManualTimer(this, callback, state);
        lock (_gate)
        {
            _timers.Add(timer);
        }

        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Completes the next time a timer is created, changed or disposed (grab it before checking the timers).</summary>
    public Task WhenTimersChange()
    {
        lock (_gate)
        {
            return _changed.Task;
        }
    }

    /// <summary>The earliest due time of an active timer no later than <paramref name="horizon"/> from now, if any.</summary>
    public DateTimeOffset? NextDueWithin(TimeSpan horizon)
    {
        lock (_gate)
        {
            var limit = _now + horizon;
            return _timers.Where(t => t.DueAt is { } due && due <= limit).Select(t => t.DueAt).Min();
        }
    }

    /// <summary>Moves the clock forward by <paramref name="delta"/>, firing every timer that falls due on the way, in order.</summary>
    public void Advance(TimeSpan delta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delta, TimeSpan.Zero);
        DateTimeOffset target;
        lock (_gate)
        {
            target = _now + delta;
        }

        AdvanceTo(target);
    }

    /// <summary>Moves the clock to <paramref name="target"/> (never backwards), firing due timers in order.</summary>
    public void AdvanceTo(DateTimeOffset target)
    {
        while (true)
        {
            ManualTimer? next;
            lock (_gate)
            {
                next = _timers.Where(t => t.DueAt is { } due && due <= target)
                    .OrderBy(t => t.DueAt).ThenBy(t => t.Sequence).FirstOrDefault();
                if (next is null)
                {
                    if (target > _now)
                    {
                        _now = target;
                    }

                    return;
                }

                if (next.DueAt > _now)
                {
                    _now = next.DueAt!.Value;
                }

                next.Reschedule(_now);
            }

            // Outside the lock: a callback may create or change timers, or read the clock.
            next.Fire();
        }
    }

    internal void Changed(ManualTimer timer, bool disposed)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            if (disposed)
            {
                _timers.Remove(timer);
            }

            signal = _changed;
            _changed = NewSignal();
        }

        signal.TrySetResult();
    }

    internal DateTimeOffset Now()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    internal long NextSequence() => Interlocked.Increment(ref _sequence);

    internal Lock Gate => _gate;

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        private TimeSpan _period = Timeout.InfiniteTimeSpan;
        private bool _disposed;

        /// <summary>When it fires next; <c>null</c> when stopped. Guarded by the owner's lock.</summary>
        public DateTimeOffset? DueAt { get; private set; }

        public long Sequence { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner.Gate)
            {
                if (_disposed)
                {
                    return false;
                }

                _period = period;
                DueAt = dueTime == Timeout.InfiniteTimeSpan ? null : owner.Now() + (dueTime < TimeSpan.Zero ? TimeSpan.Zero : dueTime);
                Sequence = owner.NextSequence();
            }

            owner.Changed(this, disposed: false);
            return true;
        }

        /// <summary>Called under the owner's lock when the timer fires: the next due time, or stopped.</summary>
        public void Reschedule(DateTimeOffset now)
        {
            DueAt = _period == Timeout.InfiniteTimeSpan || _period <= TimeSpan.Zero ? null : now + _period;
            Sequence = owner.NextSequence();
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (owner.Gate)
            {
                if (_disposed)
                {
                    return;
                }

                _disposed = true;
                DueAt = null;
            }

            owner.Changed(this, disposed: true);
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
