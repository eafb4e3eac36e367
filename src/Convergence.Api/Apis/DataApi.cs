using System.Globalization;
using System.Text;
using Convergence.Api.Auth;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>
/// <c>GET /api/v1/data/{org}/costs/daily</c>: the org's daily cost from <c>cost_focus_daily</c>, grouped and filtered,
/// so a frontend never needs warehouse credentials. Sums are exact decimals, one row per currency (never added across
/// currencies).
/// </summary>
public static class DataApi
{
    public const string FocusTable = "cost_focus_daily";
    public const int MaxRangeDays = 366;
    public const int MaxLimit = 1000;

    /// <summary>Cap on the FOCUS rows one request aggregates (a bound on its time; memory does not grow with it); narrower ranges or filters answer larger datasets.</summary>
    public const int MaxScannedRows = 2_000_000;

    /// <summary>Dimensions a caller may group by, and the FOCUS table column behind each.</summary>
    private static readonly Dictionary<string, string> Dimensions = new(StringComparer.Ordinal)
    {
        ["date"] = "charge_date",
        ["provider"] = "x_provider",
        ["service"] = "service_name",
        ["service_category"] = "service_category",
        ["model"] = "sku_id",
        ["project"] = "sub_account_id",
        ["billing_account"] = "billing_account_id",
    };

    private static readonly string[] DefaultGroups = ["date", "provider", "service", "model", "project"];

    public static IEndpointRouteBuilder MapDataApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/api/v1/data/{org_slug}").WithTags("Data").RequireAuthorization(ConvergenceAuth.OrgPolicy)
            .MapGet("/costs/daily", DailyCosts)
            .WithSummary("Daily billed, effective and list cost from the org's FOCUS table, grouped by date, provider, service, model, project (default) and currency.");
        return app;
    }

    public static async Task<Ok<DailyCostsResponse>> DailyCosts(
        [FromRoute(Name = "org_slug")] string orgSlug,
        [FromQuery(Name = "start_date")] string? startDate,
        [FromQuery(Name = "end_date")] string? endDate,
        [FromQuery(Name = "provider")] string? provider,
        [FromQuery(Name = "group_by")] string? groupBy,
        [FromQuery(Name = "limit")] int? limit,
        [FromQuery(Name = "page_token")] string? pageToken,
        IWarehouse warehouse, [FromServices] DeploymentEnvironment environment, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        var end = Day(endDate, "end_date") ?? today;
        var start = Day(startDate, "start_date") ?? end.AddDays(-29);
        if (start > end)
        {
            throw RequestValidationException.For("start_date", "must not be after end_date.");
        }

        if (end.DayNumber - start.DayNumber + 1 > MaxRangeDays)
        {
            throw RequestValidationException.For("end_date", $"the range may cover at most {MaxRangeDays} days.");
        }

        var groups = (groupBy ?? string.Join(",", DefaultGroups)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
        var unknown = groups.Where(g => !Dimensions.ContainsKey(g)).ToList();
        if (unknown.Count > 0 || groups.Count == 0)
        {
            throw RequestValidationException.For("group_by", $"must list dimensions among {string.Join(", ", Dimensions.Keys)}; unknown: {string.Join(", ", unknown)}.");
        }

        if (provider is not null && !(provider is "gcp" or "openai" or "anthropic" or "deepseek"))
        {
            throw RequestValidationException.For("provider", "must be gcp, openai, anthropic or deepseek.");
        }

        var pageSize = limit ?? 100;
        if (pageSize is < 1 or > MaxLimit)
        {
            throw RequestValidationException.For("limit", $"must be between 1 and {MaxLimit}.");
        }

        var offset = Offset(pageToken);
        var dataset = DatasetRef.ForOrg(org, environment);
        if (!await warehouse.DatasetExistsAsync(dataset, cancellationToken))
        {
            throw new ResourceNotFoundException("Organization dataset", dataset.Name);
        }

        var columns = groups.Select(g => Dimensions[g]).Append("billing_currency").Distinct().ToList();
        // Rows are summed as they stream in (exact decimals; memory grows with the groups, not with the rows scanned).
        var totals = new Dictionary<string, (string?[] Keys, decimal Billed, decimal Effective, decimal List)>(StringComparer.Ordinal);
        if ((await warehouse.ListTablesAsync(dataset, cancellationToken)).Contains(FocusTable))
        {
            var parameters = new Dictionary<string, object?> { ["start"] = start, ["end"] = end, ["provider"] = provider };
            var scanned = 0;
            await foreach (var row in warehouse.StreamAsync(
                dataset,
                new SqlQuery(
                    $"SELECT {string.Join(", ", columns)}, billed_cost, effective_cost, list_cost FROM {FocusTable} " +
                    "WHERE charge_date >= @start AND charge_date <= @end AND (@provider IS NULL OR x_provider = @provider)",
                    parameters),
                cancellationToken))
            {
                if (++scanned > MaxScannedRows)
                {
                    throw RequestValidationException.For("start_date", $"the range holds more than {MaxScannedRows:N0} cost rows; ask for fewer days or one provider.");
                }

                var keys = columns.Select(c => c == "charge_date" ? row.Date(c).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) : row.Text(c)).ToArray();
                var id = string.Join("\u001f", keys.Select(k => k ?? "\u0000"));
                var current = totals.TryGetValue(id, out var t) ? t : (keys, 0m, 0m, 0m);
                totals[id] = (keys, current.Item2 + row.Decimal("billed_cost"), current.Item3 + row.Decimal("effective_cost"), current.Item4 + row.Decimal("list_cost"));
            }
        }

        var ordered = totals.Values
            .OrderBy(v => string.Join("\u001f", v.Keys.Select(k => k ?? string.Empty)), StringComparer.Ordinal)
            .ToList();
        var page = ordered.Skip(offset).Take(pageSize).Select(v =>
        {
            string? Value(string dimension) => groups.Contains(dimension) ? v.Keys[columns.IndexOf(Dimensions[dimension])] : null;
            return new DailyCostRow(
                Value("date"), Value("provider"), Value("service"), Value("service_category"), Value("model"), Value("project"), Value("billing_account"),
                v.Billed, v.Effective, v.List, v.Keys[columns.IndexOf("billing_currency")] ?? "USD");
        }).ToList();
        var next = offset + page.Count < ordered.Count ? Token(offset + page.Count) : null;
        return TypedResults.Ok(new DailyCostsResponse(org.Value, start, end, groups, page, next));
    }

    private static DateOnly? Day(string? text, string field) =>
        text is null ? null
        : DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) ? d
        : throw RequestValidationException.For(field, "must be a date as YYYY-MM-DD.");

    private static string Token(int offset) => Convert.ToBase64String(Encoding.UTF8.GetBytes($"o:{offset}"));

    private static int Offset(string? token)
    {
        if (token is null)
        {
            return 0;
        }

        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            if (text.StartsWith("o:", StringComparison.Ordinal) && int.TryParse(text[2..], NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
            {
                return offset;
            }
        }
        catch (FormatException)
        {
        }

        throw RequestValidationException.For("page_token", "is not a token this API issued; use next_page from the previous answer.");
    }
}

/// <summary>One group of cost; dimensions not grouped by are null.</summary>
public sealed record DailyCostRow(
    string? Date,
    string? Provider,
    string? Service,
    string? ServiceCategory,
    string? Model,
    string? Project,
    string? BillingAccount,
    decimal BilledCost,
    decimal EffectiveCost,
    decimal ListCost,
    string Currency);

public sealed record DailyCostsResponse(string OrgSlug, DateOnly StartDate, DateOnly EndDate, IReadOnlyList<string> GroupBy, IReadOnlyList<DailyCostRow> Rows, string? NextPage);
