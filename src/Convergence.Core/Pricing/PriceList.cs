using System.Text.RegularExpressions;

namespace Convergence.Core.Pricing;

/// <summary>
/// An org's price list for one provider: effective-dated rows, at most one per model and day, so a price change adds
/// a row from a date and never reprices earlier usage.
/// </summary>
/// <remarks>
/// Lookup tolerates dated variants: usage reported for <c>gpt-4o-2024-08-06</c> or
/// <c>claude-3-5-sonnet-20241022</c> uses that exact row when the list has one, else the row of the base model
/// (<c>gpt-4o</c>, <c>claude-3-5-sonnet</c>).
/// </remarks>
public sealed partial class PriceList
{
    private readonly Dictionary<string, ModelPrice[]> _byModel;

    private PriceList(IEnumerable<ModelPrice> prices) =>
        _byModel = prices.GroupBy(p => p.ModelId, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderBy(p => p.EffectiveFrom).ToArray(), StringComparer.Ordinal);

    public IEnumerable<ModelPrice> Prices => _byModel.Values.SelectMany(p => p);

    /// <summary>Builds a list after <see cref="Validate"/> found nothing wrong.</summary>
    /// <exception cref="Errors.RequestValidationException">The prices are inconsistent.</exception>
    public static PriceList Create(IEnumerable<ModelPrice> prices)
    {
        var list = prices.ToList();
        var problems = Validate(list);
        return problems.Count == 0 ? new PriceList(list) : throw new Errors.RequestValidationException(problems);
    }

    /// <summary>
    /// Checks every row: a model id, non-negative prices, a currency, <c>effective_to</c> not before
    /// <c>effective_from</c>, and no two rows of one model covering the same day. Returns problems by field.
    /// </summary>
    public static Dictionary<string, string[]> Validate(IReadOnlyList<ModelPrice> prices)
    {
        var problems = new Dictionary<string, List<string>>();
        void Add(string field, string problem)
        {
            if (!problems.TryGetValue(field, out var list))
            {
                problems[field] = list = [];
            }

            list.Add(problem);
        }

        foreach (var price in prices)
        {
            if (string.IsNullOrWhiteSpace(price.ModelId) || price.ModelId.Length > 200 || price.ModelId.Any(char.IsControl))
            {
                Add("model_id", $"'{price.ModelId}' is not a model id (1 to 200 printable characters).");
            }

            foreach (var (column, value) in price.Prices())
            {
                if (value < 0)
                {
                    Add(column, $"{price.ModelId}: {value} is negative; prices are zero or more.");
                }
            }

            if (price.Currency is not { Length: 3 } || !price.Currency.All(char.IsAsciiLetterUpper))
            {
                Add("currency", $"{price.ModelId}: '{price.Currency}' is not an ISO 4217 code such as USD.");
            }

            if (price.EffectiveTo < price.EffectiveFrom)
            {
                Add("effective_to", $"{price.ModelId}: effective_to {price.EffectiveTo:yyyy-MM-dd} is before effective_from {price.EffectiveFrom:yyyy-MM-dd}.");
            }
        }

        foreach (var model in prices.GroupBy(p => p.ModelId, StringComparer.Ordinal))
        {
            var ordered = model.OrderBy(p => p.EffectiveFrom).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                var previous = ordered[i - 1];
                if (previous.EffectiveTo is null || previous.EffectiveTo >= ordered[i].EffectiveFrom)
                {
                    Add("effective_from", $"{model.Key}: the price from {ordered[i].EffectiveFrom:yyyy-MM-dd} overlaps the one from {previous.EffectiveFrom:yyyy-MM-dd}; close that one first (effective_to).");
                }
            }
        }

        return problems.ToDictionary(p => p.Key, p => p.Value.ToArray());
    }

    /// <summary>The price of <paramref name="modelId"/> on <paramref name="day"/>, or null when the list has none.</summary>
    public ModelPrice? Find(string modelId, DateOnly day)
    {
        foreach (var candidate in Candidates(modelId))
        {
            if (_byModel.TryGetValue(candidate, out var rows) && rows.FirstOrDefault(r => r.AppliesOn(day)) is { } price)
            {
                return price;
            }
        }

        return null;
    }

    /// <summary>The id itself, then the id without a trailing release date (<c>-2024-08-06</c>, <c>-20241022</c>).</summary>
    internal static IEnumerable<string> Candidates(string modelId)
    {
        yield return modelId;
        var match = DatedSuffix().Match(modelId);
        if (match.Success && match.Index > 0)
        {
            yield return modelId[..match.Index];
        }
    }

    [GeneratedRegex(@"-(\d{4}-\d{2}-\d{2}|\d{8})$")]
    private static partial Regex DatedSuffix();
}
