using Convergence.Core.Pricing;

namespace Convergence.Core.Subscriptions;

/// <summary>
/// One row of an org's OpenAI subscription table: a plan's per-seat monthly price in <see cref="Currency"/>, how it
/// is billed, and the seats the org holds, for the days <see cref="EffectiveFrom"/> to <see cref="EffectiveTo"/>
/// (inclusive; open-ended when null). A price OpenAI does not publish (contact sales) is null; nothing is guessed.
/// </summary>
public sealed record OpenAiSubscription(
    string PlanName,
    string? DisplayName,
    decimal? UnitPrice,
    string Currency,
    string BillingPeriod,
    long Seats,
    DateOnly EffectiveFrom,
    DateOnly? EffectiveTo,
    string? Notes) : IEffectiveDated<OpenAiSubscription>
{
    public const string Monthly = "monthly";

    public const string Annual = "annual";

    public static readonly IReadOnlyList<string> BillingPeriods = [Monthly, Annual];

    string IEffectiveDated<OpenAiSubscription>.Key => PlanName;

    OpenAiSubscription IEffectiveDated<OpenAiSubscription>.WithEffectiveTo(DateOnly? effectiveTo) => this with { EffectiveTo = effectiveTo };

    public bool AppliesOn(DateOnly day) => day >= EffectiveFrom && (EffectiveTo is null || day <= EffectiveTo);
}
