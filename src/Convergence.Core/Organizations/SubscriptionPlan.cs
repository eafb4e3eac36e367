namespace Convergence.Core.Organizations;

/// <summary>A subscription plan and its run limits (SPEC §8).</summary>
public sealed record SubscriptionPlan(string Name, int DailyLimit, int MonthlyLimit, int ConcurrentLimit)
{
    public static readonly SubscriptionPlan Starter = new("STARTER", 6, 180, 1);
    public static readonly SubscriptionPlan Professional = new("PROFESSIONAL", 25, 750, 3);
    public static readonly SubscriptionPlan Scale = new("SCALE", 100, 3000, 10);

    public static IReadOnlyList<SubscriptionPlan> All { get; } = [Starter, Professional, Scale];

    public static string Names => string.Join(", ", All.Select(p => p.Name));

    public static bool TryGet(string? name, out SubscriptionPlan plan)
    {
        plan = All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))!;
        return plan is not null;
    }
}
