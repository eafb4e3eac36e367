using System.Collections.Concurrent;

namespace Convergence.Core.Pipelines;

/// <summary>Cancellation sources of the runs executing in this process, by run id.</summary>
public sealed class RunCancellationRegistry
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _runs = new(StringComparer.Ordinal);

    internal CancellationTokenSource Register(string runId, CancellationToken outer)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _runs[runId] = source;
        return source;
    }

    internal void Unregister(string runId) => _runs.TryRemove(runId, out _);

    /// <summary>Cancels the run if it executes here; returns whether it did.</summary>
    public bool TryCancel(string runId)
    {
        if (!_runs.TryGetValue(runId, out var source))
        {
            return false;
        }

        try
        {
            source.Cancel();
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    public bool IsRunningHere(string runId) => _runs.ContainsKey(runId);
}

/// <summary>This process's identity as a worker: the owner recorded on the runs it holds.</summary>
public sealed record WorkerIdentity(string Id)
{
    public static WorkerIdentity Create() => new($"{Environment.MachineName.ToLowerInvariant()}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
}
