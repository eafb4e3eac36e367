using Convergence.Core.Organizations;

namespace Convergence.Core.Pricing;

/// <summary>The org's editable price list for an LLM provider (seeded from the shipped defaults on first use).</summary>
public interface IOrgPriceLists
{
    /// <param name="provider"><c>openai</c>, <c>anthropic</c> or <c>deepseek</c>.</param>
    Task<PriceList> GetAsync(OrgSlug org, string provider, CancellationToken cancellationToken);
}
