namespace Convergence.Core.Scheduling;

/// <summary>
/// Tells the other service instances on the same control plane that the run queue may hold work for them (a run was
/// admitted, a slot came free, leases were rescued), so an idle instance claims it now rather than at its next poll.
/// PostgreSQL implements it with <c>LISTEN</c>/<c>NOTIFY</c>; without one (SQLite on one machine) instances poll.
/// A lost message costs only latency: the poll still finds the work, and nothing relies on a message for correctness.
/// </summary>
public interface IRunQueueBroadcast
{
    /// <summary>Sends one wake-up, signed by <paramref name="sender"/> (an instance ignores its own).</summary>
    Task PublishAsync(string sender, CancellationToken cancellationToken);

    /// <summary>
    /// Listens until <paramref name="cancellationToken"/> is cancelled (returns) or the connection fails (throws): calls
    /// <paramref name="onRemote"/> for every wake-up another sender publishes, and once as soon as it listens (anything
    /// published while it was not listening is looked at then).
    /// </summary>
    Task ListenAsync(string self, Action onRemote, CancellationToken cancellationToken);
}
