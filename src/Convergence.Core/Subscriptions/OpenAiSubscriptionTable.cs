using System.Text.RegularExpressions;
using Convergence.Core.Errors;

namespace Convergence.Core.Subscriptions;

/// <summary>
/// An org's OpenAI subscription plans: effective-dated rows, at most one per plan and day, so a change adds a row
/// from a date and never reprices earlier months.
/// </summary>
public sealed partial class OpenAiSubscriptionTable
{
    private readonly Dictionary<string, OpenAiSubscription[]> _byPlan;

    private OpenAiSubscriptionTable(IEnumerable<OpenAiSubscription> plans) =>
        _byPlan = plans.GroupBy(p => p.PlanName, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderBy(p => p.EffectiveFrom).ToArray(), StringComparer.Ordinal);

    public IEnumerable<OpenAiSubscription> Plans => _byPlan.Values.SelectMany(p => p);

    /// <summary>Builds a table after <see cref="Validate"/> found nothing wrong.</summary>
    /// <exception cref="RequestValidationException">The rows are inconsistent; errors are keyed by column.</exception>
    public static OpenAiSubscriptionTable Create(IEnumerable<OpenAiSubscription> plans)
    {
        var list = plans.ToList();
        var problems = Validate(list);
        return problems.Count == 0 ? new OpenAiSubscriptionTable(list) : throw new RequestValidationException(problems);
    }

    /// <summary>
    /// Checks every row: a slug-like plan name, a non-negative price, an ISO 4217 currency, a known billing period,
    /// at least one seat, <c>effective_to</c> not before <c>effective_from</c>, and no two rows of one plan covering the
    /// same day. Returns problems by column.
    /// </summary>
    public static Dictionary<string, string[]> Validate(IReadOnlyList<OpenAiSubscription> plans)
    {
        var problems = new Dictionary<string, List<string>>();
        void Add(string field, string problem)
        {
            if (!problems.TryGetValue(field, out var list))
            {
                problems[field] = list = [];
            }

            list.Add(problem);
        }

        foreach (var plan in plans)
        {
            if (!IsPlanName(plan.PlanName))
            {
                Add("plan_name", $"'{Shorten(plan.PlanName)}' is not a plan name (1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit).");
            }

            if (plan.DisplayName is { } display && (display.Length > 200 || display.Any(char.IsControl)))
            {
                Add("display_name", $"{plan.PlanName}: at most 200 printable characters.");
            }

            if (plan.UnitPrice < 0)
            {
                Add("unit_price", $"{plan.PlanName}: {plan.UnitPrice} is negative; prices are zero or more.");
            }

            if (plan.Currency is not { Length: 3 } || !plan.Currency.All(char.IsAsciiLetterUpper))
            {
                Add("currency", $"{plan.PlanName}: '{Shorten(plan.Currency)}' is not an ISO 4217 code such as USD.");
            }

            if (!OpenAiSubscription.BillingPeriods.Contains(plan.BillingPeriod))
            {
                Add("billing_period", $"{plan.PlanName}: '{Shorten(plan.BillingPeriod)}' is not one of {string.Join(", ", OpenAiSubscription.BillingPeriods)}.");
            }

            if (plan.Seats < 0)
            {
                Add("seats", $"{plan.PlanName}: {plan.Seats} seats; seats are 0 (the org does not hold the plan) or more.");
            }

            if (plan.EffectiveTo < plan.EffectiveFrom)
            {
                Add("effective_to", $"{plan.PlanName}: effective_to {plan.EffectiveTo:yyyy-MM-dd} is before effective_from {plan.EffectiveFrom:yyyy-MM-dd}.");
            }

            if (plan.Notes is { Length: > 1000 })
            {
                Add("notes", $"{plan.PlanName}: at most 1000 characters.");
            }
        }

        foreach (var group in plans.GroupBy(p => p.PlanName, StringComparer.Ordinal))
        {
            var ordered = group.OrderBy(p => p.EffectiveFrom).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                var previous = ordered[i - 1];
                if (previous.EffectiveTo is null || previous.EffectiveTo >= ordered[i].EffectiveFrom)
                {
                    Add("effective_from", $"{group.Key}: the row from {ordered[i].EffectiveFrom:yyyy-MM-dd} overlaps the one from {previous.EffectiveFrom:yyyy-MM-dd}; close that one first (effective_to).");
                }
            }
        }

        return problems.ToDictionary(p => p.Key, p => p.Value.ToArray());
    }

    public static bool IsPlanName(string? text) => text is not null && PlanNamePattern().IsMatch(text);

    /// <summary>The row of <paramref name="planName"/> on <paramref name="day"/>, or null when the table has none.</summary>
    public OpenAiSubscription? Find(string planName, DateOnly day) =>
        _byPlan.TryGetValue(planName, out var rows) ? rows.FirstOrDefault(r => r.AppliesOn(day)) : null;

    private static string Shorten(string? text) => text is null ? string.Empty : text.Length > 64 ? text[..64] : text;

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,63}$")]
    private static partial Regex PlanNamePattern();
}
