namespace Convergence.Core.Pricing;

/// <summary>A row of an effective-dated table: one key's value for the days <c>EffectiveFrom</c> to <c>EffectiveTo</c> (inclusive).</summary>
public interface IEffectiveDated<T>
    where T : IEffectiveDated<T>
{
    /// <summary>What the rows are dated for: a model id, a plan name.</summary>
    string Key { get; }

    DateOnly EffectiveFrom { get; }

    DateOnly? EffectiveTo { get; }

    T WithEffectiveTo(DateOnly? effectiveTo);
}

/// <summary>Changes to effective-dated tables (price lists, subscription plans) that never rewrite history.</summary>
public static class EffectiveDated
{
    /// <summary>
    /// The rows after <paramref name="change"/> takes effect on its <c>EffectiveFrom</c>: the key's row open that day is
    /// closed the day before, a row starting that very day is replaced, and the new row ends the day before the key's
    /// next later row unless it names its own end.
    /// </summary>
    /// <param name="complete">Fills the new row from the row it follows (null when none), such as a kept display name.</param>
    /// <returns>The rows, or null when the key has no row at all.</returns>
    public static (List<T> Rows, T Added)? Change<T>(IReadOnlyList<T> rows, T change, Func<T, T?, T>? complete = null)
        where T : class, IEffectiveDated<T>
    {
        var own = rows.Where(r => r.Key == change.Key).ToList();
        if (own.Count == 0)
        {
            return null;
        }

        var from = change.EffectiveFrom;
        var updated = rows.Where(r => r.Key != change.Key || r.EffectiveFrom != from).Select(r =>
            r.Key == change.Key && r.EffectiveFrom < from && (r.EffectiveTo is null || from <= r.EffectiveTo)
                ? r.WithEffectiveTo(from.AddDays(-1))
                : r).ToList();
        var next = own.Where(r => r.EffectiveFrom > from).Select(r => (DateOnly?)r.EffectiveFrom).Min();
        var open = own.Where(r => r.EffectiveFrom <= from).MaxBy(r => r.EffectiveFrom);
        var added = (complete is null ? change : complete(change, open)).WithEffectiveTo(change.EffectiveTo ?? next?.AddDays(-1));
        updated.Add(added);
        return (updated, added);
    }
}
