namespace Convergence.Processors.ProviderApis;

/// <summary>How <see cref="ProviderApiClient"/> retries one request and bounds one fetch.</summary>
/// <param name="MaxAttempts">Attempts per request (429, 5xx, timeouts, dropped connections); default 4.</param>
/// <param name="BaseDelay">First backoff, doubled per retry; default 1 s.</param>
/// <param name="MaxDelay">Cap on any wait, a provider's <c>Retry-After</c> included; default 60 s.</param>
/// <param name="MaxPages">Pages one fetch may follow before it is treated as a runaway cursor; default 1,000.</param>
/// <param name="MaxBodyBytes">Largest response body read; default 32 MiB.</param>
public sealed record ProviderApiOptions(int MaxAttempts, TimeSpan BaseDelay, TimeSpan MaxDelay, int MaxPages, int MaxBodyBytes)
{
    public static ProviderApiOptions Default { get; } = new(4, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60), 1000, 32 * 1024 * 1024);

    public ProviderApiOptions Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAttempts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(BaseDelay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDelay, BaseDelay);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBodyBytes, 1024);
        return this;
    }
}
