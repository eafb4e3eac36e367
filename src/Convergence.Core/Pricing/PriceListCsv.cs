using System.Globalization;
using Convergence.Core.Configuration;

namespace Convergence.Core.Pricing;

/// <summary>
/// Reads the default price lists under <c>configs/{provider}/seed/data/{provider}_pricing.csv</c>: a header of the
/// table's columns, then one row per model price. Seed files hold no quoted fields; a quote is an error.
/// </summary>
public static class PriceListCsv
{
    public static readonly IReadOnlyList<string> Columns =
    [
        "model_id", "mode", "input_per_mtok", "cached_input_per_mtok", "cache_write_5m_per_mtok", "cache_write_1h_per_mtok",
        "output_per_mtok", "batch_input_per_mtok", "batch_output_per_mtok", "currency", "effective_from", "effective_to", "source",
    ];

    public static IReadOnlyList<ModelPrice> Load(string path)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || !lines[0].Split(',').SequenceEqual(Columns))
        {
            throw new ConfigurationErrorException(path, 1, null, $"the header must be: {string.Join(",", Columns)}");
        }

        var prices = new List<ModelPrice>(lines.Length - 1);
        for (var i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            var line = i + 1;
            if (lines[i].Contains('"', StringComparison.Ordinal))
            {
                throw new ConfigurationErrorException(path, line, null, "seed price files hold no quoted fields");
            }

            var cells = lines[i].Split(',');
            if (cells.Length != Columns.Count)
            {
                throw new ConfigurationErrorException(path, line, null, $"expected {Columns.Count} fields, found {cells.Length}");
            }

            decimal? Price(int column)
            {
                if (cells[column].Length == 0)
                {
                    return null;
                }

                return decimal.TryParse(cells[column], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
                    ? value
                    : throw new ConfigurationErrorException(path, line, Columns[column], $"'{cells[column]}' is not a non-negative decimal");
            }

            DateOnly? Day(int column)
            {
                if (cells[column].Length == 0)
                {
                    return null;
                }

                return DateOnly.TryParseExact(cells[column], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var value)
                    ? value
                    : throw new ConfigurationErrorException(path, line, Columns[column], $"'{cells[column]}' is not an ISO date");
            }

            prices.Add(new ModelPrice(
                cells[0],
                cells[1].Length == 0 ? null : cells[1],
                Price(2) ?? throw new ConfigurationErrorException(path, line, Columns[2], "input_per_mtok is required"),
                Price(3),
                Price(4),
                Price(5),
                Price(6) ?? throw new ConfigurationErrorException(path, line, Columns[6], "output_per_mtok is required"),
                Price(7),
                Price(8),
                cells[9],
                Day(10) ?? throw new ConfigurationErrorException(path, line, Columns[10], "effective_from is required"),
                Day(11),
                cells[12].Length == 0 ? null : cells[12]));
        }

        var problems = PriceList.Validate(prices);
        return problems.Count == 0
            ? prices
            : throw new ConfigurationErrorException(path, null, problems.Keys.First(), string.Join(" ", problems.Values.First()));
    }
}
