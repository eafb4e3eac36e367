namespace Convergence.Kms.Google;

/// <summary>Google.Apis.Auth's clock, driven by <see cref="TimeProvider"/> (so tests control token expiry).</summary>
public sealed class TimeProviderClock(TimeProvider time) : global::Google.Apis.Util.IClock
{
    public DateTime Now => time.GetLocalNow().DateTime;

    public DateTime UtcNow => time.GetUtcNow().UtcDateTime;
}
