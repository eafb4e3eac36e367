namespace Convergence.Core.Organizations;

/// <summary>A row of <c>org_profiles</c>.</summary>
public sealed record OrgProfile(
    OrgSlug OrgSlug,
    string CompanyName,
    string AdminEmail,
    string Status,
    string SubscriptionPlan,
    string DatasetId,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>A row of <c>org_subscriptions</c>.</summary>
public sealed record OrgSubscription(
    OrgSlug OrgSlug,
    string PlanName,
    string Status,
    int DailyLimit,
    int MonthlyLimit,
    int ConcurrentLimit,
    DateTimeOffset? TrialEndsAt,
    DateTimeOffset SubscriptionStart,
    DateTimeOffset UpdatedAt)
{
    public static OrgSubscription ForPlan(OrgSlug org, SubscriptionPlan plan, DateTimeOffset now) =>
        new(org, plan.Name, SubscriptionStatus.Active, plan.DailyLimit, plan.MonthlyLimit, plan.ConcurrentLimit, null, now, now);
}

/// <summary>A row of <c>org_usage_quotas</c>: run counters for one org and UTC day.</summary>
public sealed record OrgUsageQuota(
    OrgSlug OrgSlug,
    DateOnly UsageDate,
    int PipelinesRunToday,
    int PipelinesRunMonth,
    int ConcurrentRunning,
    DateTimeOffset LastResetDaily,
    DateTimeOffset LastResetMonthly)
{
    public static OrgUsageQuota Fresh(OrgSlug org, DateTimeOffset now) =>
        new(org, DateOnly.FromDateTime(now.UtcDateTime), 0, 0, 0, now, now);
}

/// <summary>An organization's profile with its subscription and today's counters.</summary>
public sealed record OrgOverview(OrgProfile Profile, OrgSubscription? Subscription, OrgUsageQuota? Quota);
