using System.Diagnostics;
using System.Globalization;
using Convergence.Core.Costs;
using Convergence.Core.Pricing;

/// <summary>
/// In-process pricing throughput: N generated LLM usage rows (OpenAI, Anthropic and DeepSeek models of the shipped
/// seed price lists, dated variants, cache reads and writes, batch rows, a few unknown models) priced with
/// <see cref="LlmCostCalculator"/>, several rounds, reporting rows/s and bytes allocated while pricing. Usage:
///   dotnet run -c Release --project bench/Convergence.Bench -- pricing [rows=1000000] [rounds=5]
/// </summary>
internal static class PricingBench
{
    public static void Run(string[] args, string configsDirectory)
    {
        var rows = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1_000_000;
        var rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;

        var calculators = new LlmCostCalculator[Enum.GetValues<LlmProvider>().Length];
        var models = new List<(LlmProvider Provider, string Model)>();
        foreach (var provider in Enum.GetValues<LlmProvider>())
        {
            var name = provider.ToString().ToLowerInvariant();
            var prices = PriceListCsv.Load(Path.Combine(configsDirectory, name, "seed", "data", $"{name}_pricing.csv"));
            calculators[(int)provider] = new LlmCostCalculator(PriceList.Create(prices));
            models.AddRange(prices.Select(p => (provider, p.ModelId)));
            models.AddRange(prices.Take(3).Select(p => (provider, p.ModelId + "-2025-01-15"))); // dated variants
        }

        models.Add((LlmProvider.OpenAI, "gpt-unknown-model"));
        var usage = Generate(rows, models);
        Console.WriteLine($"pricing {rows:N0} in-memory LLM usage rows ({models.Count} models, 3 providers, 90 days), {rounds} rounds");

        var results = new List<double>();
        const int warmups = 2;
        for (var round = 1 - warmups; round <= rounds; round++)
        {
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var watch = Stopwatch.StartNew();
            var total = 0m;
            var unpriced = new int[Enum.GetValues<UnpricedReason>().Length];
            foreach (var row in usage)
            {
                var cost = calculators[(int)row.Provider].Price(row);
                if (cost.IsPriced)
                {
                    total += cost.Total;
                }
                else
                {
                    unpriced[(int)cost.Reason]++;
                }
            }

            watch.Stop();
            var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            var rate = rows / watch.Elapsed.TotalSeconds;
            if (round <= 0)
            {
                Console.WriteLine($"  warm-up: {rate,12:N0} rows/s   (JIT tiering; the first round also fills the model-and-day lookups)");
                continue;
            }

            results.Add(rate);
            Console.WriteLine($"  round {round}: {rate,12:N0} rows/s   {allocated,12:N0} bytes allocated ({(double)allocated / rows:0.00} per row)   total {total:0.00} USD, {unpriced.Sum():N0} unpriced");
            if (round == rounds)
            {
                Console.WriteLine("  unpriced by reason: " + string.Join(", ", Enum.GetValues<UnpricedReason>().Skip(1).Select(r => $"{r} {unpriced[(int)r]:N0}")));
            }
        }

        results.Sort();
        Console.WriteLine($"  median {results[results.Count / 2]:N0} rows/s, best {results[^1]:N0} rows/s (goal >= 1,000,000)");
    }

    private static LlmUsageRow[] Generate(int count, List<(LlmProvider Provider, string Model)> models)
    {
        var random = new Random(20251120);
        var start = new DateOnly(2025, 9, 1);
        var rows = new LlmUsageRow[count];
        for (var i = 0; i < count; i++)
        {
            var (provider, model) = models[random.Next(models.Count)];
            var anthropic = provider == LlmProvider.Anthropic;
            rows[i] = new LlmUsageRow(
                start.AddDays(random.Next(90)),
                provider,
                model,
                $"proj_{random.Next(20)}",
                $"key_{random.Next(50)}",
                provider != LlmProvider.DeepSeek && random.Next(10) == 0,
                random.Next(5_000_000),
                random.Next(3) == 0 ? random.Next(2_000_000) : 0,
                anthropic && random.Next(2) == 0 ? random.Next(500_000) : 0,
                anthropic && random.Next(5) == 0 ? random.Next(100_000) : 0,
                random.Next(1_000_000),
                random.Next(1, 5_000));
        }

        return rows;
    }
}
