namespace Convergence.Core.Errors;

/// <summary>
/// Base of the expected failures a caller can act on. The HTTP layer maps each kind to one status code in one place;
/// messages are written for the caller and never contain secrets.
/// </summary>
public abstract class ConvergenceException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>A short stable title for problem details, such as "Organization not found".</summary>
    public abstract string Title { get; }
}

/// <summary>The named resource does not exist (or is not visible to the caller).</summary>
public sealed class ResourceNotFoundException(string resource, string id)
    : ConvergenceException($"{resource} '{id}' was not found.")
{
    public string Resource { get; } = resource;

    public override string Title => $"{Resource} not found";
}

/// <summary>The request conflicts with the current state (slug taken, bootstrap missing, run in progress).</summary>
public sealed class ConflictException(string title, string message) : ConvergenceException(message)
{
    public override string Title { get; } = title;
}

/// <summary>Request values are well-formed but invalid; <see cref="Errors"/> maps each field to its problems.</summary>
public sealed class RequestValidationException(IReadOnlyDictionary<string, string[]> errors)
    : ConvergenceException("One or more fields are invalid: " + string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")))
{
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;

    public override string Title => "Invalid request";

    public static RequestValidationException For(string field, string problem) => new(new Dictionary<string, string[]> { [field] = [problem] });
}

/// <summary>A dependency (store, warehouse, KMS, provider) is unavailable; retrying later may succeed.</summary>
public sealed class DependencyUnavailableException(string dependency, string message, Exception? inner = null, TimeSpan? retryAfter = null)
    : ConvergenceException(message, inner)
{
    public string Dependency { get; } = dependency;

    /// <summary>When a retry is worth trying, if known (sent as Retry-After).</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;

    public override string Title => $"{Dependency} unavailable";
}

/// <summary>
/// A failure worth retrying (a provider's 429 or 5xx, a dropped connection, a busy database). Step retries apply only
/// to these; every other exception fails the step at once.
/// </summary>
public class TransientException(string message, Exception? inner = null, TimeSpan? retryAfter = null) : Exception(message, inner)
{
    /// <summary>How long the other side asked us to wait (a Retry-After), if it said.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>Whether the executor retries <paramref name="exception"/>.</summary>
    public static bool IsTransient(Exception exception) => exception is TransientException or TimeoutException or HttpRequestException or DependencyUnavailableException;
}

/// <summary>An error-severity data-quality check failed; the step's write was rolled back.</summary>
public sealed class DataQualityException(string message) : Exception(message);

/// <summary>The run was stopped by a shutdown of its worker, not by a user; its step writes were rolled back.</summary>
public sealed class RunInterruptedException(string message) : Exception(message);

/// <summary>
/// A queued run was not started: a step's processor refused the org (<see cref="Pipelines.IOrgRunRequestValidator"/>,
/// such as a missing or INVALID integration). The run is FAILED with the reason and none of its steps executed.
/// </summary>
public sealed class RunRefusedException(string message) : Exception(message);

/// <summary>
/// A queued run was not started because its worker's lease on the queue entry was lost first (it expired and the entry
/// was re-queued or claimed by another worker): nothing was written, and the entry's new owner runs it.
/// </summary>
public sealed class LeaseLostException(string message) : Exception(message);

/// <summary>A run limit of the org's plan is reached (429 with Retry-After until it resets).</summary>
public sealed class QuotaExceededException(string limit, int value, int used, DateTimeOffset resetsAt, TimeSpan retryAfter, string message)
    : ConvergenceException(message)
{
    /// <summary><c>daily</c> or <c>monthly</c>.</summary>
    public string Limit { get; } = limit;

    public int Value { get; } = value;

    public int Used { get; } = used;

    public DateTimeOffset ResetsAt { get; } = resetsAt;

    public TimeSpan RetryAfter { get; } = retryAfter;

    public override string Title => "Run quota exceeded";
}

/// <summary>The org's subscription may not run pipelines (not ACTIVE, or a TRIAL that ended).</summary>
public sealed class SubscriptionInactiveException(string message) : ConvergenceException(message)
{
    public override string Title => "Subscription not active";
}
