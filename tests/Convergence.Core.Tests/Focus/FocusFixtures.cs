using Convergence.Core.Costs;
using Convergence.Core.Focus;
using Convergence.Core.Pricing;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Focus;

/// <summary>The shipped FOCUS catalog and GCP mapping, and mapped rows of each provider to validate.</summary>
internal static class FocusFixtures
{
    public static readonly FocusColumnCatalog Catalog = FocusColumnCatalog.Load(Path.Combine(RepoPaths.Configs, "focus", "focus_v1.2_columns.csv"));

    public static readonly GcpServiceCategoryMap GcpCategories = GcpServiceCategoryMap.Load(Path.Combine(RepoPaths.Configs, "focus", "gcp_category_mapping.csv"));

    public static readonly FocusValidator Validator = new(Catalog);

    public static readonly DateOnly Day = new(2025, 6, 1);

    private static readonly PriceList Prices = PriceList.Create(
    [
        new("gpt-4o", "chat", 2.5m, 1.25m, null, null, 10m, 1.25m, 5m, "USD", new DateOnly(2024, 1, 1), null, "test"),
        new("claude-sonnet-4", "chat", 3m, 0.3m, 3.75m, 6m, 15m, null, null, "USD", new DateOnly(2024, 1, 1), null, "test"),
        new("deepseek-chat", "chat", 0.28m, 0.028m, null, null, 0.42m, null, null, "USD", new DateOnly(2024, 1, 1), null, "test"),
    ]);

    public static readonly LlmCostCalculator Calculator = new(Prices);

    public static LlmUsageRow Usage(LlmProvider provider, bool batch = false, string? project = "proj_1", string? key = "key_1") => provider switch
    {
        LlmProvider.OpenAI => new(Day, provider, "gpt-4o-2024-08-06", project, key, batch, 1_000_000, 200_000, 0, 0, 50_000, 10),
        LlmProvider.Anthropic => new(Day, provider, "claude-sonnet-4", project, key, batch, 100_000, 2_000_000, 200_000, 50_000, 40_000, 7, 3),
        _ => new(Day, provider, "deepseek-chat", project, key, batch, 1_000_000, 1_000_000, 0, 0, 1_000_000, 4),
    };

    public static FocusRow Llm(LlmProvider provider, bool batch = false)
    {
        var usage = Usage(provider, batch);
        return LlmFocusMapper.Map(usage, Calculator.Price(usage), "org-acme");
    }

    public static GcpBillingRow Gcp(decimal cost = 1.25m, params decimal[] credits) => new(
        "000000-B0BBA4-940A77",
        "24E6-581D-38E5",
        "BigQuery",
        "D5A4-0C3E-4DA4",
        "Analysis",
        "billing-example",
        "Billing Example",
        new DateTimeOffset(2020, 11, 9, 23, 0, 0, TimeSpan.Zero),
        new DateTimeOffset(2020, 11, 10, 0, 0, 0, TimeSpan.Zero),
        cost,
        [.. credits.Select((amount, i) => new GcpCredit($"credit-{i}", amount, "PROMOTION"))],
        "USD",
        24909m,
        "bytes",
        0.0000231983m,
        "gibibyte",
        "us-central1",
        "us-central1",
        new Dictionary<string, string> { ["env"] = "prod" },
        "202011");
}
