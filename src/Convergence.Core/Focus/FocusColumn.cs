namespace Convergence.Core.Focus;

/// <summary>One column of the FOCUS specification as <c>configs/focus/focus_v1.2_columns.csv</c> lists it.</summary>
/// <param name="FeatureLevel">Mandatory, Conditional or Recommended.</param>
/// <param name="AllowsNulls">Whether a present column may hold null.</param>
/// <param name="DataType">String, Decimal, Date/Time or JSON.</param>
/// <param name="ValueFormat">The format rule: Currency Format, Date/Time Format, Allowed values, Unit Format, ….</param>
public sealed record FocusColumn(
    string Id,
    string DisplayName,
    string ColumnType,
    string FeatureLevel,
    bool AllowsNulls,
    string DataType,
    string ValueFormat,
    string Introduced,
    string PresenceRule,
    string Description)
{
    public bool IsMandatory => FeatureLevel == "Mandatory";
}
