namespace Convergence.Core.Focus;

/// <summary>One credit of a GCP billing export row; <see cref="Amount"/> is negative for a credit that lowers cost.</summary>
/// <param name="Type">PROMOTION, SUSTAINED_USAGE_DISCOUNT, COMMITTED_USAGE_DISCOUNT, FREE_TIER, … when exported.</param>
public sealed record GcpCredit(string Name, decimal Amount, string? Type = null);
