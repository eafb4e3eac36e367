using System.Collections.Concurrent;
using Convergence.Core.Organizations;

namespace Convergence.Api.Auth;

/// <summary>
/// One counter per org that every short-lived org cache (API keys, profiles) stamps on its entries: bumping it after a
/// change on this instance makes the cached entries of that org stale at once. Other instances see the change when
/// their entries expire (seconds).
/// </summary>
public sealed class OrgCacheGenerations
{
    private readonly ConcurrentDictionary<string, long> _generations = new(StringComparer.Ordinal);

    public long Current(OrgSlug org) => _generations.TryGetValue(org.Value, out var g) ? g : 0;

    public void Invalidate(OrgSlug org) => _generations.AddOrUpdate(org.Value, 1, (_, g) => g + 1);
}
