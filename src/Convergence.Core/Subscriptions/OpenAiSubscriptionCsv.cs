using System.Globalization;
using Convergence.Core.Configuration;

namespace Convergence.Core.Subscriptions;

/// <summary>
/// Reads the default subscription plans in <c>configs/openai/seed/data/openai_subscriptions.csv</c>: a header of the
/// table's columns, then one row per plan. Seed files hold no quoted fields; a quote is an error.
/// </summary>
public static class OpenAiSubscriptionCsv
{
    public static readonly IReadOnlyList<string> Columns =
        ["plan_name", "display_name", "unit_price", "currency", "billing_period", "seats", "effective_from", "effective_to", "notes"];

    public static IReadOnlyList<OpenAiSubscription> Load(string path)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || !lines[0].Split(',').SequenceEqual(Columns))
        {
            throw new ConfigurationErrorException(path, 1, null, $"the header must be: {string.Join(",", Columns)}");
        }

        var plans = new List<OpenAiSubscription>(lines.Length - 1);
        for (var i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            var line = i + 1;
            if (lines[i].Contains('"', StringComparison.Ordinal))
            {
                throw new ConfigurationErrorException(path, line, null, "seed subscription files hold no quoted fields");
            }

            var cells = lines[i].Split(',');
            if (cells.Length != Columns.Count)
            {
                throw new ConfigurationErrorException(path, line, null, $"expected {Columns.Count} fields, found {cells.Length}");
            }

            string? Text(int column) => cells[column].Length == 0 ? null : cells[column];

            decimal? Price(int column) =>
                cells[column].Length == 0 ? null
                : decimal.TryParse(cells[column], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) ? value
                : throw new ConfigurationErrorException(path, line, Columns[column], $"'{cells[column]}' is not a non-negative decimal");

            DateOnly? Day(int column) =>
                cells[column].Length == 0 ? null
                : DateOnly.TryParseExact(cells[column], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var value) ? value
                : throw new ConfigurationErrorException(path, line, Columns[column], $"'{cells[column]}' is not an ISO date");

            var seats = cells[5].Length == 0 ? 0
                : long.TryParse(cells[5], NumberStyles.None, CultureInfo.InvariantCulture, out var count) ? count
                : throw new ConfigurationErrorException(path, line, Columns[5], $"'{cells[5]}' is not a whole number of seats");

            plans.Add(new OpenAiSubscription(
                cells[0],
                Text(1),
                Price(2),
                Text(3) ?? "USD",
                cells[4],
                seats,
                Day(6) ?? throw new ConfigurationErrorException(path, line, Columns[6], "effective_from is required"),
                Day(7),
                Text(8)));
        }

        var problems = OpenAiSubscriptionTable.Validate(plans);
        return problems.Count == 0
            ? plans
            : throw new ConfigurationErrorException(path, null, problems.Keys.First(), string.Join(" ", problems.Values.First()));
    }
}
