using Convergence.Core.Organizations;

namespace Convergence.Core.Scheduling;

/// <summary>
/// The calendar of run quotas: daily counters reset at midnight UTC, monthly counters on the subscription's
/// anniversary (the day of month it started, or the month's last day when that month is shorter), also at midnight UTC.
/// </summary>
public static class QuotaCalendar
{
    /// <summary>The UTC day a run admitted at <paramref name="now"/> counts against.</summary>
    public static DateOnly UsageDate(DateTimeOffset now) => DateOnly.FromDateTime(now.UtcDateTime);

    /// <summary>When the daily counter next resets: the coming midnight UTC.</summary>
    public static DateTimeOffset NextDailyReset(DateTimeOffset now) =>
        new(UsageDate(now).AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

    /// <summary>The first day of the billing month that holds <paramref name="day"/>.</summary>
    public static DateOnly MonthStart(DateOnly subscriptionStart, DateOnly day)
    {
        var candidate = Anniversary(subscriptionStart, day.Year, day.Month);
        if (candidate <= day)
        {
            return candidate;
        }

        var previous = day.AddMonths(-1);
        return Anniversary(subscriptionStart, previous.Year, previous.Month);
    }

    /// <summary>When the monthly counter next resets: midnight UTC of the next anniversary.</summary>
    public static DateTimeOffset NextMonthlyReset(DateOnly subscriptionStart, DateTimeOffset now)
    {
        var start = MonthStart(subscriptionStart, UsageDate(now));
        var next = start.AddMonths(1);
        var reset = Anniversary(subscriptionStart, next.Year, next.Month);
        return new(reset.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
    }

    /// <summary>Whether the subscription may run pipelines at <paramref name="now"/>: ACTIVE, or TRIAL before it ends.</summary>
    public static bool IsUsable(OrgSubscription subscription, DateTimeOffset now, out string reason)
    {
        reason = subscription.Status switch
        {
            SubscriptionStatus.Active => string.Empty,
            SubscriptionStatus.Trial when subscription.TrialEndsAt is null || subscription.TrialEndsAt > now => string.Empty,
            SubscriptionStatus.Trial => $"The trial ended at {subscription.TrialEndsAt:O}.",
            _ => $"The subscription is {subscription.Status}.",
        };
        return reason.Length == 0;
    }

    private static DateOnly Anniversary(DateOnly subscriptionStart, int year, int month) =>
        new(year, month, Math.Min(subscriptionStart.Day, DateTime.DaysInMonth(year, month)));
}

/// <summary>The admission rules every run-queue store applies inside its transaction, in one place.</summary>
public static class QuotaRules
{
    /// <summary>
    /// The limit one more run would break, or null when it may run: the daily limit first, then the monthly one,
    /// given the runs already counted today and in the billing month that began on the anniversary of <paramref name="subscriptionStart"/>.
    /// </summary>
    public static QuotaLimit? Exceeded(Organizations.OrgSubscription subscription, DateOnly subscriptionStart, int today, int month, DateTimeOffset now)
    {
        if (today >= subscription.DailyLimit)
        {
            return new QuotaLimit(QuotaLimit.Daily, subscription.DailyLimit, today, QuotaCalendar.NextDailyReset(now));
        }

        return month >= subscription.MonthlyLimit
            ? new QuotaLimit(QuotaLimit.Monthly, subscription.MonthlyLimit, month, QuotaCalendar.NextMonthlyReset(subscriptionStart, now))
            : null;
    }

    /// <summary>Why an entry's lease was taken from its worker (the entry's <c>last_error</c>, and the run's when it fails).</summary>
    public static string LeaseExpired(string? owner, DateTimeOffset? expiredAt, long attempt, long maxAttempts, bool lastAttempt) =>
        $"The lease of worker {owner} expired at {expiredAt?.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'} (the worker crashed or stalled) during attempt {attempt} of {maxAttempts}."
        + (lastAttempt ? " No attempts are left." : string.Empty);
}

/// <summary>
/// The quota state of one org while a store admits a batch of runs (a trigger's ticks or one admission) inside its
/// transaction: the subscription and today's counters are read once, then each run is checked and counted in memory,
/// and the store adds <see cref="Added"/> to the counters before it commits.
/// </summary>
public sealed class OrgQuotaCounters(OrgSubscription? subscription, string? inactive, DateOnly start, int today, int month, DateTimeOffset now)
{
    public int Added { get; private set; }

    /// <summary>Why the subscription cannot run anything, or null when it can.</summary>
    public string? Inactive => inactive;

    public static OrgQuotaCounters Refused(string reason) => new(null, reason, default, 0, 0, default);

    /// <summary>
    /// Sorts a batch's orgs by their subscriptions: an org with none, or with one that cannot run anything now, gets a
    /// refusing entry in <paramref name="counters"/>; the others are returned with their subscription's start day, for
    /// the store to read (or create) their counters.
    /// </summary>
    public static Dictionary<string, DateOnly> Usable(
        IEnumerable<string> orgs, IReadOnlyDictionary<string, OrgSubscription> subscriptions, DateTimeOffset now, IDictionary<string, OrgQuotaCounters> counters)
    {
        var usable = new Dictionary<string, DateOnly>(StringComparer.Ordinal);
        foreach (var org in orgs)
        {
            if (!subscriptions.TryGetValue(org, out var subscription))
            {
                counters[org] = Refused($"Organization '{org}' has no subscription.");
            }
            else if (!QuotaCalendar.IsUsable(subscription, now, out var reason))
            {
                counters[org] = Refused(reason);
            }
            else
            {
                usable[org] = DateOnly.FromDateTime(subscription.SubscriptionStart.UtcDateTime);
            }
        }

        return usable;
    }

    /// <summary>The limit the next run would exceed, or null.</summary>
    public QuotaLimit? Exceeded() => subscription is null ? null : QuotaRules.Exceeded(subscription, start, today + Added, month + Added, now);

    /// <summary>Why the next run is refused, or null when it is admitted.</summary>
    public string? Refusal() => inactive ?? Exceeded()?.Describe();

    public void Count() => Added++;
}
