using System.Globalization;
using Convergence.Core.Errors;

namespace Convergence.Core.Pipelines;

/// <summary>
/// The validated date slice of a run: <c>{date}</c> alone, or <c>{start_date}..{end_date}</c>. With neither, the
/// slice is today in UTC (the scheduler passes the scheduled local date explicitly).
/// </summary>
public sealed record RunParameters(DateOnly Date, DateOnly StartDate, DateOnly EndDate)
{
    public const string DateKey = "date";
    public const string StartDateKey = "start_date";
    public const string EndDateKey = "end_date";

    public static RunParameters Parse(IReadOnlyDictionary<string, string> parameters, DateOnly today, int maxRangeDays)
    {
        var errors = new Dictionary<string, string[]>();
        DateOnly? Read(string key)
        {
            if (!parameters.TryGetValue(key, out var text))
            {
                return null;
            }

            if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var value))
            {
                return value;
            }

            errors[key] = [$"'{text}' is not an ISO date (yyyy-MM-dd)."];
            return null;
        }

        var date = Read(DateKey);
        var start = Read(StartDateKey);
        var end = Read(EndDateKey);
        if (errors.Count == 0)
        {
            if (date is not null && (start is not null || end is not null))
            {
                errors[DateKey] = ["give either date or start_date/end_date, not both."];
            }
            else if ((start is null) != (end is null))
            {
                errors[start is null ? StartDateKey : EndDateKey] = ["start_date and end_date go together."];
            }
            else if (start > end)
            {
                errors[StartDateKey] = [$"start_date {start:yyyy-MM-dd} is after end_date {end:yyyy-MM-dd}."];
            }
            else if (start is not null && end!.Value.DayNumber - start.Value.DayNumber + 1 > maxRangeDays)
            {
                errors[EndDateKey] = [$"the range is {end.Value.DayNumber - start.Value.DayNumber + 1} days; this pipeline allows at most {maxRangeDays}."];
            }
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        if (start is { } s && end is { } e)
        {
            return new RunParameters(e, s, e);
        }

        var day = date ?? today;
        return new RunParameters(day, day, day);
    }

    public IEnumerable<KeyValuePair<string, object?>> Placeholders()
    {
        yield return new(DateKey, Date);
        yield return new(StartDateKey, StartDate);
        yield return new(EndDateKey, EndDate);
    }
}
