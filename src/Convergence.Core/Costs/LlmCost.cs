using Convergence.Core.Pricing;

namespace Convergence.Core.Costs;

/// <summary>
/// The cost of one <see cref="LlmUsageRow"/>: one amount per token kind, their <see cref="Total"/>, and
/// <see cref="ListTotal"/> at the standard (non-batch) rates. Amounts are decimals (tokens × price per million ÷ 10⁶),
/// never rounded here: exact, except that a batch discount ratio which does not terminate (batch input ÷ input, for
/// cached and cache-write parts) carries 28 significant digits. When <see cref="Reason"/> is not <see cref="UnpricedReason.None"/> every amount is
/// zero and must not be reported as a cost.
/// </summary>
/// <param name="Detail">For <see cref="UnpricedReason.MissingPartPrice"/>, the empty price column.</param>
/// <param name="BatchDiscountFallback">
/// True when a batch row was priced at the provider's documented 50 % batch discount because the list has no batch
/// price for the model.
/// </param>
public readonly record struct LlmCost(
    UnpricedReason Reason,
    string? Detail,
    ModelPrice? Price,
    decimal UncachedInput,
    decimal CachedInput,
    decimal CacheWrite5m,
    decimal CacheWrite1h,
    decimal Output,
    decimal Total,
    decimal ListTotal,
    bool BatchDiscountFallback)
{
    public bool IsPriced => Reason == UnpricedReason.None;

    /// <summary>The price list's currency; null when unpriced.</summary>
    public string? Currency => Price?.Currency;

    internal static LlmCost Unpriced(UnpricedReason reason, string? detail = null, ModelPrice? price = null) =>
        new(reason, detail, price, 0m, 0m, 0m, 0m, 0m, 0m, 0m, false);
}
