using System.Globalization;
using Convergence.Core.Storage;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Pricing;

/// <summary>The default price lists under configs/*/seed/data match their table schemas and hold sane prices.</summary>
public sealed class SeedPriceListTests
{
    public static TheoryData<string> Providers() => new() { "openai", "anthropic", "deepseek" };

    [Theory]
    [MemberData(nameof(Providers))]
    public void SeedCsv_HeaderMatchesTheTableSchema(string provider)
    {
        var (header, _) = Read(provider);
        var schema = Schema(provider);

        header.ShouldBe(schema.Columns.Select(c => c.Name).ToArray());
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public void SeedCsv_RowsHaveRequiredValuesNonNegativeDecimalsAndUniqueKeys(string provider)
    {
        var (header, rows) = Read(provider);
        var schema = Schema(provider);
        rows.Count.ShouldBeGreaterThan(0);

        var keys = new HashSet<(string, string)>();
        foreach (var row in rows)
        {
            row.Length.ShouldBe(header.Length, string.Join(",", row));
            for (var i = 0; i < header.Length; i++)
            {
                var column = schema.FindColumn(header[i])!;
                var value = row[i];
                if (column.Required)
                {
                    value.ShouldNotBeNullOrEmpty($"{row[0]}.{column.Name}");
                }

                if (column.Type == ColumnType.Numeric && value.Length > 0)
                {
                    decimal.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var price).ShouldBeTrue($"{row[0]}.{column.Name}='{value}'");
                    price.ShouldBeGreaterThanOrEqualTo(0m);
                }

                if (column.Type == ColumnType.Date && value.Length > 0)
                {
                    DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _).ShouldBeTrue($"{row[0]}.{column.Name}='{value}'");
                }
            }

            keys.Add((row[0], row[Array.IndexOf(header, "effective_from")])).ShouldBeTrue($"{row[0]} is listed twice for one effective_from");
            row[0].ShouldNotStartWith("ft:");
        }
    }

    [Theory]
    [InlineData("openai", "gpt-4o", "2.5", "1.25", "", "", "10", "1.25", "5")]
    [InlineData("anthropic", "claude-sonnet-4-5", "3", "0.3", "3.75", "6", "15", "", "")]
    [InlineData("deepseek", "deepseek-chat", "0.28", "0.028", "", "", "0.42", "", "")]
    public void SeedCsv_KnownModel_HasTheListPricePerMillionTokens(
        string provider, string model, string input, string cached, string write5m, string write1h, string output, string batchIn, string batchOut)
    {
        var (header, rows) = Read(provider);
        var row = rows.Single(r => r[0] == model);
        string Get(string column) => row[Array.IndexOf(header, column)];

        (Get("input_per_mtok"), Get("cached_input_per_mtok"), Get("cache_write_5m_per_mtok"), Get("cache_write_1h_per_mtok"))
            .ShouldBe((input, cached, write5m, write1h));
        (Get("output_per_mtok"), Get("batch_input_per_mtok"), Get("batch_output_per_mtok")).ShouldBe((output, batchIn, batchOut));
        Get("currency").ShouldBe("USD");
    }

    private static TableSchema Schema(string provider) =>
        TableSchema.Load(Path.Combine(RepoPaths.Root, "configs", provider, "schemas", $"{provider}_pricing.json"));

    private static (string[] Header, List<string[]> Rows) Read(string provider)
    {
        // The seed files hold no quoted fields (checked: no value contains a comma or a quote).
        var lines = File.ReadAllLines(Path.Combine(RepoPaths.Root, "configs", provider, "seed", "data", $"{provider}_pricing.csv"));
        lines.ShouldAllBe(l => !l.Contains('"'));
        return (lines[0].Split(','), [.. lines.Skip(1).Select(l => l.Split(','))]);
    }
}
