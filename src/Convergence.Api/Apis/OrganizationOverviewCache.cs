using Convergence.Api.Auth;
using Convergence.Core.Organizations;
using Microsoft.Extensions.Caching.Memory;

namespace Convergence.Api.Apis;

/// <summary>
/// Serves <c>GET /organizations/{org}</c> from a short-lived copy: frontends poll it on every page, and it changes
/// only through root administration (which invalidates it here at once) or run counters (at most
/// <see cref="Ttl"/> stale). A zero TTL turns the cache off.
/// </summary>
public sealed class OrganizationOverviewCache(OrganizationAdministration admin, OrgCacheGenerations generations, TimeProvider time, TimeSpan ttl) : IDisposable
{
    private const int MaxOrgs = 100_000;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = MaxOrgs });

    public TimeSpan Ttl => ttl;

    public async Task<OrgOverview> GetAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        if (ttl <= TimeSpan.Zero)
        {
            return await admin.GetAsync(org, cancellationToken);
        }

        var now = time.GetUtcNow();
        var generation = generations.Current(org);
        if (_cache.TryGetValue(org.Value, out Entry? entry) && entry is not null && entry.Generation == generation && entry.ExpiresAt > now)
        {
            return entry.Overview;
        }

        var overview = await admin.GetAsync(org, cancellationToken);
        _cache.Set(org.Value, new Entry(overview, generation, now + ttl), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = ttl });
        return overview;
    }

    public void Dispose() => _cache.Dispose();

    private sealed record Entry(OrgOverview Overview, long Generation, DateTimeOffset ExpiresAt);
}
