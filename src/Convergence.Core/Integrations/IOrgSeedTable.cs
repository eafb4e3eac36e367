using Convergence.Core.Organizations;

namespace Convergence.Core.Integrations;

/// <summary>
/// A per-org editable table seeded from shipped defaults when an integration is set up (price lists, subscription
/// plans). Seeding never overwrites the org's edits: an existing table is left as it is.
/// </summary>
public interface IOrgSeedTable
{
    /// <summary>The table name, such as <c>openai_pricing</c>, as pipelines name it.</summary>
    string Table { get; }

    /// <summary>Creates and fills the table from the defaults when the org has none; returns the rows it now holds.</summary>
    Task<int> SeedIfAbsentAsync(OrgSlug org, CancellationToken cancellationToken);
}
