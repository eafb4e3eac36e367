namespace Convergence.Core.Pricing;

/// <summary>
/// One model's list price, in a currency per million tokens, for the days <see cref="EffectiveFrom"/> to
/// <see cref="EffectiveTo"/> (inclusive; open-ended when null). A price the provider does not publish is null, and
/// pricing falls back as <see cref="PriceList"/> documents; nothing is guessed.
/// </summary>
public sealed record ModelPrice(
    string ModelId,
    string? Mode,
    decimal InputPerMtok,
    decimal? CachedInputPerMtok,
    decimal? CacheWrite5mPerMtok,
    decimal? CacheWrite1hPerMtok,
    decimal OutputPerMtok,
    decimal? BatchInputPerMtok,
    decimal? BatchOutputPerMtok,
    string Currency,
    DateOnly EffectiveFrom,
    DateOnly? EffectiveTo,
    string? Source) : IEffectiveDated<ModelPrice>
{
    string IEffectiveDated<ModelPrice>.Key => ModelId;

    ModelPrice IEffectiveDated<ModelPrice>.WithEffectiveTo(DateOnly? effectiveTo) => this with { EffectiveTo = effectiveTo };

    public bool AppliesOn(DateOnly day) => day >= EffectiveFrom && (EffectiveTo is null || day <= EffectiveTo);

    /// <summary>Every price with its column name, for validation messages.</summary>
    public IEnumerable<(string Column, decimal? Value)> Prices()
    {
        yield return ("input_per_mtok", InputPerMtok);
        yield return ("cached_input_per_mtok", CachedInputPerMtok);
        yield return ("cache_write_5m_per_mtok", CacheWrite5mPerMtok);
        yield return ("cache_write_1h_per_mtok", CacheWrite1hPerMtok);
        yield return ("output_per_mtok", OutputPerMtok);
        yield return ("batch_input_per_mtok", BatchInputPerMtok);
        yield return ("batch_output_per_mtok", BatchOutputPerMtok);
    }
}
