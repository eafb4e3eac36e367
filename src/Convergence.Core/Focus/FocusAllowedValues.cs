namespace Convergence.Core.Focus;

/// <summary>
/// The allowed values of the FOCUS 1.2 columns whose value format is "Allowed values". The column catalog names the
/// rule but not the lists, so they are kept here, transcribed from FOCUS_Spec v1.2 <c>specification/columns/*.md</c>.
/// </summary>
public static class FocusAllowedValues
{
    public static readonly IReadOnlySet<string> ChargeCategory =
        new HashSet<string>(["Usage", "Purchase", "Tax", "Credit", "Adjustment"], StringComparer.Ordinal);

    /// <summary>ChargeClass is null, or Correction for a row correcting a previously invoiced billing period.</summary>
    public static readonly IReadOnlySet<string> ChargeClass = new HashSet<string>(["Correction"], StringComparer.Ordinal);

    public static readonly IReadOnlySet<string> ChargeFrequency =
        new HashSet<string>(["One-Time", "Recurring", "Usage-Based"], StringComparer.Ordinal);

    public static readonly IReadOnlySet<string> PricingCategory =
        new HashSet<string>(["Standard", "Dynamic", "Committed", "Other"], StringComparer.Ordinal);

    public static readonly IReadOnlySet<string> ServiceCategory = new HashSet<string>(
        [
            "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
            "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
            "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
        ],
        StringComparer.Ordinal);

    /// <summary>
    /// Subcategories Convergence emits, by category: every category's catch-all <c>Other (Category)</c>, and the
    /// AI and Machine Learning subcategories. A value outside this table is reported, so extend it (from the
    /// specification) before a mapper emits a new subcategory.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlySet<string>> ServiceSubcategory = ServiceCategory.ToDictionary(
        category => category,
        category => (IReadOnlySet<string>)new HashSet<string>(
            category == "AI and Machine Learning"
                ? ["AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing", $"Other ({category})"]
                : [$"Other ({category})"],
            StringComparer.Ordinal),
        StringComparer.Ordinal);
}
