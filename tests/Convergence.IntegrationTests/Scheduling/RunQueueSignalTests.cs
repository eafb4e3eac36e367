using Convergence.Api.Pipelines;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>The wake-up signal: local wake-ups at once, broadcasts to other instances coalesced and never fatal.</summary>
public sealed class RunQueueSignalTests
{
    private sealed class GatedBroadcast : IRunQueueBroadcast
    {
        private readonly object _lock = new();
        private TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<string> Sent { get; } = [];

        public TaskCompletionSource Entered { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private int _failuresLeft;

        /// <summary>How many of the next sends fail (after their gate opens).</summary>
        public int FailuresLeft { init => _failuresLeft = value; }

        public async Task PublishAsync(string sender, CancellationToken cancellationToken)
        {
            Task gate;
            lock (_lock)
            {
                Sent.Add(sender);
                gate = _gate.Task;
                Entered.TrySetResult();
            }

            await gate;
            if (Interlocked.Decrement(ref _failuresLeft) >= 0)
            {
                throw new InvalidOperationException("server gone");
            }
        }

        /// <summary>Lets the send in progress finish; the next one waits again.</summary>
        public void Release()
        {
            lock (_lock)
            {
                var open = _gate;
                _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
                Entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
                open.TrySetResult();
            }
        }

        public Task ListenAsync(string self, Action onRemote, CancellationToken cancellationToken) => Task.Delay(Timeout.Infinite, cancellationToken);
    }

    [Fact]
    public async Task Notify_WhileABroadcastIsInFlight_SendsOneMoreAfterIt_NotOnePerCall()
    {
        var broadcast = new GatedBroadcast();
        var signal = new RunQueueSignal(new WorkerIdentity("me"), NullLogger<RunQueueSignal>.Instance, broadcast);

        var woken = signal.Next;
        signal.Notify();
        woken.IsCompleted.ShouldBeTrue("the local dispatcher wakes at once, not after the broadcast");
        await broadcast.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 100; i++)
        {
            signal.Notify();
        }

        broadcast.Release();
        await broadcast.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        broadcast.Release();
        broadcast.Sent.ShouldBe(["me", "me"], "100 wake-ups during a send are covered by one more send");

        // Idle again: the next wake-up is sent.
        var third = broadcast.Entered;
        signal.Notify();
        await third.Task.WaitAsync(TimeSpan.FromSeconds(30));
        broadcast.Release();
        broadcast.Sent.Count.ShouldBe(3);
    }

    [Fact]
    public async Task FailedBroadcast_IsLoggedNotThrown_AndTheNextNotifySendsAgain()
    {
        var broadcast = new GatedBroadcast { FailuresLeft = 1 };
        var signal = new RunQueueSignal(new WorkerIdentity("me"), NullLogger<RunQueueSignal>.Instance, broadcast);

        signal.Notify();
        await broadcast.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        broadcast.Release();
        var next = broadcast.Entered;
        signal.Notify();
        await next.Task.WaitAsync(TimeSpan.FromSeconds(30));
        broadcast.Release();

        broadcast.Sent.Count.ShouldBe(2);
    }

    [Fact]
    public void WithoutBroadcast_NotifyOnlyWakesThisInstance()
    {
        var signal = new RunQueueSignal(new WorkerIdentity("me"), NullLogger<RunQueueSignal>.Instance);
        var woken = signal.Next;

        signal.Notify();

        woken.IsCompleted.ShouldBeTrue();
        signal.Broadcasts.ShouldBeFalse();
    }
}
