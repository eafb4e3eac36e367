using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;
using Microsoft.Extensions.Caching.Memory;

namespace Convergence.Api.Auth;

/// <summary>
/// Validates org API keys: hash → lookup → active, not expired, org ACTIVE.
/// </summary>
/// <remarks>
/// Positive lookups are cached for a few seconds (bounded cache, keyed by the hash), so a key revoked on another
/// instance stops working within that time, and at once on this one (<see cref="OrgCacheGenerations.Invalidate"/>). Failed lookups are
/// not cached, so a flood of random keys cannot grow memory.
/// </remarks>
public sealed class ApiKeyAuthenticator : IDisposable
{
    private const int MaxCachedKeys = 100_000;

    private readonly IControlPlaneStore _store;
    private readonly TimeProvider _time;
    private readonly TimeSpan _ttl;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = MaxCachedKeys });
    private readonly OrgCacheGenerations _generations;

    public ApiKeyAuthenticator(IControlPlaneStore store, TimeProvider time, TimeSpan ttl, OrgCacheGenerations generations)
    {
        _store = store;
        _time = time;
        _ttl = ttl;
        _generations = generations;
    }

    public async ValueTask<ApiKeyCheck> AuthenticateAsync(string presented, CancellationToken cancellationToken)
    {
        var parsed = OrgApiKey.Parse(presented);
        if (!parsed.IsSuccess)
        {
            return ApiKeyCheck.Rejected("The API key is malformed.");
        }

        var key = parsed.Value;
        var hash = key.Hash;
        var now = _time.GetUtcNow();
        if (!_cache.TryGetValue(hash, out CachedKey? cached) || cached is null || cached.ExpiresAt <= now || cached.Generation != Generation(key.Org))
        {
            var generation = Generation(key.Org);
            if (!await _store.IsBootstrappedAsync(cancellationToken))
            {
                return ApiKeyCheck.Rejected("The API key is not valid.");
            }

            var lookup = await _store.FindApiKeyByHashAsync(hash, cancellationToken);
            if (lookup is null || lookup.Key.OrgSlug != key.Org)
            {
                return ApiKeyCheck.Rejected("The API key is not valid.");
            }

            cached = new CachedKey(lookup, generation, now + _ttl);
            if (lookup.Key.IsUsableAt(now))
            {
                _cache.Set(hash, cached, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _ttl });
                await _store.TouchApiKeyAsync(key.Org, lookup.Key.OrgApiKeyId, now, cancellationToken);
            }
        }

        var record = cached.Lookup.Key;
        if (record.RevokedAt is not null || !record.IsActive)
        {
            return ApiKeyCheck.Rejected("The API key has been revoked.");
        }

        if (record.ExpiresAt is { } expiresAt && expiresAt <= now)
        {
            return ApiKeyCheck.Rejected("The API key has expired.");
        }

        if (cached.Lookup.OrgStatus != OrgStatus.Active)
        {
            return ApiKeyCheck.Rejected($"The organization is {cached.Lookup.OrgStatus}.");
        }

        return ApiKeyCheck.Accepted(record);
    }

    public void Dispose() => _cache.Dispose();

    private long Generation(OrgSlug org) => _generations.Current(org);

    private sealed record CachedKey(ApiKeyLookup Lookup, long Generation, DateTimeOffset ExpiresAt);
}

/// <summary>The outcome of checking an org key; <see cref="Reason"/> is safe to show (it never echoes the key).</summary>
public sealed record ApiKeyCheck(ApiKeyRecord? Key, string? Reason)
{
    public static ApiKeyCheck Accepted(ApiKeyRecord key) => new(key, null);

    public static ApiKeyCheck Rejected(string reason) => new(null, reason);
}
