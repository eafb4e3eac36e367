namespace Convergence.Core.Focus;

/// <summary>One broken FOCUS column rule: which row (0-based, in the order validated), which column, which rule.</summary>
/// <param name="Rule">A short rule name: not-null, allowed-values, currency-format, utc, period-order, cost-sign, ….</param>
public sealed record FocusViolation(int RowIndex, string Column, string Rule, string Message)
{
    public override string ToString() => $"row {RowIndex}, {Column} ({Rule}): {Message}";
}
