namespace Convergence.Core.Costs;

/// <summary>
/// One day of LLM token usage for one model, project/workspace and API key, as the provider's usage report groups it.
/// Token counts are disjoint: <see cref="UncachedInputTokens"/> excludes cache reads and cache writes, so a provider
/// whose input count includes cached tokens (OpenAI's <c>input_tokens</c> includes <c>input_cached_tokens</c>) is
/// split by its adapter before pricing.
/// </summary>
/// <param name="Day">The UTC day the usage belongs to; the price in effect on this day applies.</param>
/// <param name="ProjectId">OpenAI project id, Anthropic workspace id, or null when not grouped by it.</param>
/// <param name="Batch">True for Batch API usage, priced with the batch rates.</param>
/// <param name="CacheWrite5mTokens">Cache creation with the default 5-minute lifetime (Anthropic).</param>
/// <param name="CacheWrite1hTokens">Cache creation with the 1-hour lifetime (Anthropic).</param>
/// <param name="Requests">Model requests counted by the provider, or null when it does not count them (Anthropic's usage report); informative, never priced.</param>
/// <param name="WebSearches">Server-side web searches (Anthropic); counted, not priced by the token price list.</param>
public sealed record LlmUsageRow(
    DateOnly Day,
    LlmProvider Provider,
    string Model,
    string? ProjectId,
    string? ApiKeyId,
    bool Batch,
    long UncachedInputTokens,
    long CachedInputTokens,
    long CacheWrite5mTokens,
    long CacheWrite1hTokens,
    long OutputTokens,
    long? Requests = null,
    long WebSearches = 0)
{
    /// <summary>Every token the row counts, across input, cache and output.</summary>
    public long TotalTokens => UncachedInputTokens + CachedInputTokens + CacheWrite5mTokens + CacheWrite1hTokens + OutputTokens;
}
