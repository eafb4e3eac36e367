using System.Collections.Concurrent;
using Convergence.Core.Pricing;

namespace Convergence.Core.Costs;

/// <summary>
/// Prices <see cref="LlmUsageRow"/>s with one org's <see cref="PriceList"/> for one provider, using the price in
/// effect on each row's day (dated model variants fall back to their base model as <see cref="PriceList.Find"/> does).
/// </summary>
/// <remarks>
/// <para>Rates are per million tokens: each part costs tokens × rate ÷ 10⁶, exactly, in decimal.</para>
/// <para>
/// Batch rows use <c>batch_input_per_mtok</c> and <c>batch_output_per_mtok</c> when the list has them; cached input
/// and cache writes of batch rows get the same discount as input (batch input ÷ input). When the list leaves a batch
/// price empty, OpenAI and Anthropic rows fall back to the 50 % discount both document for their Batch APIs (flagged
/// by <see cref="LlmCost.BatchDiscountFallback"/>); DeepSeek has no batch API, so its batch rows are unpriced.
/// </para>
/// <para>
/// A part with tokens whose price column is empty makes the row unpriced (<see cref="UnpricedReason.MissingPartPrice"/>)
/// rather than priced at zero or at another rate. Thread-safe; price lookups are cached per model and day for the
/// calculator's lifetime, so build one per price list version.
/// </para>
/// </remarks>
public sealed class LlmCostCalculator
{
    /// <summary>The Batch API discount OpenAI and Anthropic document: half the standard rate.</summary>
    public const decimal DocumentedBatchFactor = 0.5m;

    private const decimal PerToken = 0.000001m;

    private readonly PriceList _prices;
    private readonly HashSet<string> _models;
    private readonly ConcurrentDictionary<(string Model, DateOnly Day), Lookup> _lookups = new();

    public LlmCostCalculator(PriceList prices)
    {
        ArgumentNullException.ThrowIfNull(prices);
        _prices = prices;
        _models = prices.Prices.Select(p => p.ModelId).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Prices one row; never throws for a missing price, the result carries the reason instead.</summary>
    public LlmCost Price(LlmUsageRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.UncachedInputTokens < 0 || row.CachedInputTokens < 0 || row.CacheWrite5mTokens < 0 || row.CacheWrite1hTokens < 0
            || row.OutputTokens < 0 || row.Requests < 0 || row.WebSearches < 0)
        {
            return LlmCost.Unpriced(UnpricedReason.NegativeTokens);
        }

        var lookup = _lookups.GetOrAdd((row.Model, row.Day), static (key, self) => self.Find(key.Model, key.Day), this);
        if (lookup.Price is not { } price)
        {
            return LlmCost.Unpriced(lookup.Reason);
        }

        if (!TryRate(row.CachedInputTokens, price.CachedInputPerMtok, out var cachedRate))
        {
            return LlmCost.Unpriced(UnpricedReason.MissingPartPrice, "cached_input_per_mtok", price);
        }

        // OpenAI lists no cache-write price: it bills tokens written to its prompt cache at the input rate.
        var write5mPrice = price.CacheWrite5mPerMtok ?? (row.Provider == LlmProvider.OpenAI ? price.InputPerMtok : null);
        if (!TryRate(row.CacheWrite5mTokens, write5mPrice, out var write5mRate))
        {
            return LlmCost.Unpriced(UnpricedReason.MissingPartPrice, "cache_write_5m_per_mtok", price);
        }

        if (!TryRate(row.CacheWrite1hTokens, price.CacheWrite1hPerMtok, out var write1hRate))
        {
            return LlmCost.Unpriced(UnpricedReason.MissingPartPrice, "cache_write_1h_per_mtok", price);
        }

        var inputRate = price.InputPerMtok;
        var outputRate = price.OutputPerMtok;
        var cacheFactor = 1m;
        var fallback = false;
        if (row.Batch)
        {
            var documented = row.Provider is LlmProvider.OpenAI or LlmProvider.Anthropic;
            if ((price.BatchInputPerMtok is null || price.BatchOutputPerMtok is null) && !documented)
            {
                return LlmCost.Unpriced(UnpricedReason.NoBatchPrice, price.BatchInputPerMtok is null ? "batch_input_per_mtok" : "batch_output_per_mtok", price);
            }

            fallback = price.BatchInputPerMtok is null || price.BatchOutputPerMtok is null;
            inputRate = price.BatchInputPerMtok ?? price.InputPerMtok * DocumentedBatchFactor;
            outputRate = price.BatchOutputPerMtok ?? price.OutputPerMtok * DocumentedBatchFactor;
            cacheFactor = price.BatchInputPerMtok is { } batchInput && price.InputPerMtok > 0
                ? batchInput / price.InputPerMtok
                : DocumentedBatchFactor;
        }

        var uncached = Cost(row.UncachedInputTokens, inputRate);
        var cached = Cost(row.CachedInputTokens, cachedRate * cacheFactor);
        var write5m = Cost(row.CacheWrite5mTokens, write5mRate * cacheFactor);
        var write1h = Cost(row.CacheWrite1hTokens, write1hRate * cacheFactor);
        var output = Cost(row.OutputTokens, outputRate);
        var total = uncached + cached + write5m + write1h + output;
        var list = !row.Batch
            ? total
            : Cost(row.UncachedInputTokens, price.InputPerMtok)
                + Cost(row.CachedInputTokens, cachedRate)
                + Cost(row.CacheWrite5mTokens, write5mRate)
                + Cost(row.CacheWrite1hTokens, write1hRate)
                + Cost(row.OutputTokens, price.OutputPerMtok);
        return new LlmCost(UnpricedReason.None, null, price, uncached, cached, write5m, write1h, output, total, list, fallback);
    }

    private Lookup Find(string model, DateOnly day) =>
        _prices.Find(model, day) is { } price
            ? new Lookup(price, UnpricedReason.None)
            : new Lookup(null, IsKnown(model) ? UnpricedReason.NoPriceOnDate : UnpricedReason.UnknownModel);

    private bool IsKnown(string model)
    {
        foreach (var candidate in PriceList.Candidates(model))
        {
            if (_models.Contains(candidate))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A part without tokens needs no price; a part with tokens needs its column filled.</summary>
    private static bool TryRate(long tokens, decimal? rate, out decimal value)
    {
        value = rate ?? 0m;
        return tokens == 0 || rate is not null;
    }

    private static decimal Cost(long tokens, decimal ratePerMillion) => tokens == 0 ? 0m : tokens * ratePerMillion * PerToken;

    private readonly record struct Lookup(ModelPrice? Price, UnpricedReason Reason);
}
