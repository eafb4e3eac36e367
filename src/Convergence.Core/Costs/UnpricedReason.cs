namespace Convergence.Core.Costs;

/// <summary>Why a usage row has no cost. A row is never priced at zero for lack of a price.</summary>
public enum UnpricedReason
{
    /// <summary>The row is priced.</summary>
    None,

    /// <summary>The price list has no row for the model or its base model (dated variant stripped), on any day.</summary>
    UnknownModel,

    /// <summary>The model is listed, but no price of it is in effect on the row's day.</summary>
    NoPriceOnDate,

    /// <summary>The row has tokens of a kind (cached input, cache write 5m/1h) whose price the list leaves empty.</summary>
    MissingPartPrice,

    /// <summary>A batch row, the list has no batch price and the provider documents no batch discount (DeepSeek).</summary>
    NoBatchPrice,

    /// <summary>A token count is negative; usage reports never hold one, so the row is rejected rather than priced.</summary>
    NegativeTokens,
}
