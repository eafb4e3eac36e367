using NCrontab;
using NodaTime;
using NodaTime.TimeZones;

namespace Convergence.Core.Scheduling;

/// <summary>
/// A 5-field cron expression (minute hour day-of-month month day-of-week) evaluated on the wall clock of an IANA time
/// zone. Immutable and thread-safe; create it with <see cref="TryCreate"/>.
/// </summary>
/// <remarks>
/// <para>
/// Zones come from the TZDB bundled with NodaTime (<see cref="DateTimeZoneProviders.Tzdb"/>), so occurrences are the
/// same on every machine whatever its operating system's time-zone data.
/// </para>
/// <para>
/// Daylight-saving policy, deterministic:
/// <list type="bullet">
/// <item>A local time skipped by a spring-forward gap runs at the first valid instant after the gap (New York 02:30 on
/// the spring-forward day runs at 03:00 EDT). Several cron times inside one gap collapse into that one instant, and a
/// cron time at the end of the gap (03:00) is the same instant, so it runs once.</item>
/// <item>A local time repeated by a fall-back runs once, at its first occurrence (the earlier offset, still daylight
/// time). The second pass of the repeated hour runs nothing: when <c>after</c> lies in it, local times already run in
/// the first pass are not run again.</item>
/// </list>
/// </para>
/// </remarks>
public sealed class CronSchedule
{
    /// <summary>Error keys of <see cref="TryCreate"/>, named like the API fields.</summary>
    public const string CronField = "cron_schedule";

    /// <inheritdoc cref="CronField"/>
    public const string TimezoneField = "timezone";

    /// <summary>
    /// How far ahead an occurrence is looked for. Eight years covers the rarest expression that fires at all
    /// (29 February skips a century year such as 2100); a longer search is a cost, not a better answer.
    /// </summary>
    private static readonly Period SearchHorizon = Period.FromYears(9);

    /// <summary>The most cron times one <see cref="Next"/> may look at before it must have found one (guards the loop).</summary>
    private const int MaxCandidates = 100_000;

    private static readonly string[] FieldNames = ["minute", "hour", "day of month", "month", "day of week"];

    /// <summary>Skipped local times → the instant the gap ends; repeated local times → the earlier of the two.</summary>
    private static readonly ZoneLocalMappingResolver Resolver =
        Resolvers.CreateMappingResolver(Resolvers.ReturnEarlier, Resolvers.ReturnStartOfIntervalAfter);

    private readonly CrontabSchedule _crontab;
    private readonly DateTimeZone _zone;

    private CronSchedule(string expression, CrontabSchedule crontab, DateTimeZone zone)
    {
        Expression = expression;
        _crontab = crontab;
        _zone = zone;
    }

    /// <summary>The cron expression, its fields separated by single spaces.</summary>
    public string Expression { get; }

    /// <summary>The canonical IANA id of the zone (an alias such as <c>US/Eastern</c> is stored as <c>America/New_York</c>).</summary>
    public string Timezone => _zone.Id;

    /// <summary>
    /// Validates <paramref name="cron"/> and <paramref name="timezone"/>. On failure <paramref name="errors"/> maps
    /// <see cref="CronField"/> and/or <see cref="TimezoneField"/> to what is wrong; on success it is empty.
    /// </summary>
    public static bool TryCreate(string? cron, string? timezone, out CronSchedule? schedule, out IReadOnlyDictionary<string, string[]> errors)
    {
        var problems = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var crontab = ParseCron(cron, out var expression, problems);
        var zone = FindZone(timezone, problems);
        if (crontab is not null && FirstOccurrence(crontab, new LocalDateTime(2000, 1, 1, 0, 0)) is null)
        {
            problems[CronField] = [$"'{expression}' never fires (a day that no month has, such as 30 February?)."];
        }

        if (problems.Count > 0)
        {
            schedule = null;
            errors = problems;
            return false;
        }

        schedule = new CronSchedule(expression!, crontab!, zone!);
        errors = problems;
        return true;
    }

    /// <summary>
    /// The first occurrence strictly after <paramref name="after"/>, as a UTC instant (offset zero), under the
    /// daylight-saving policy in the remarks of <see cref="CronSchedule"/>.
    /// </summary>
    /// <exception cref="CronScheduleException">The expression has no occurrence within the search horizon.</exception>
    public DateTimeOffset Next(DateTimeOffset after)
    {
        var afterInstant = Instant.FromDateTimeOffset(after);

        // Resolving local times with the policy's resolver is monotonic (a later local time never maps to an earlier
        // instant), so the answer is the first cron time after the local clock reading of `after` whose instant is
        // later than `after`. Cron times before that reading map to instants at or before `after`; after it, only
        // those in the second pass of a repeated hour do, and they are skipped here.
        var local = afterInstant.InZone(_zone).LocalDateTime;
        for (var i = 0; i < MaxCandidates; i++)
        {
            var candidate = FirstOccurrence(_crontab, local)
                ?? throw new CronScheduleException($"Cron '{Expression}' has no occurrence in {Timezone} within {SearchHorizon.Years} years after {after:O}.");
            var instant = _zone.ResolveLocal(candidate, Resolver).ToInstant();
            if (instant > afterInstant)
            {
                return instant.ToDateTimeOffset();
            }

            local = candidate;
        }

        throw new CronScheduleException($"Cron '{Expression}' in {Timezone}: no occurrence after {after:O} among {MaxCandidates} candidates.");
    }

    /// <summary>The calendar date, in the schedule's zone, of <paramref name="occurrence"/> (the <c>{date}</c> of a scheduled run).</summary>
    public DateOnly ScheduledLocalDate(DateTimeOffset occurrence)
    {
        var date = Instant.FromDateTimeOffset(occurrence).InZone(_zone).Date;
        return new DateOnly(date.Year, date.Month, date.Day);
    }

    public override string ToString() => $"{Expression} ({Timezone})";

    /// <summary>The first cron time strictly after <paramref name="local"/> within the horizon, or null.</summary>
    private static LocalDateTime? FirstOccurrence(CrontabSchedule crontab, LocalDateTime local)
    {
        var start = local.ToDateTimeUnspecified();
        var end = (local + SearchHorizon).ToDateTimeUnspecified();
        var next = crontab.GetNextOccurrence(start, end);
        return next >= end ? null : LocalDateTime.FromDateTime(next);
    }

    private static CrontabSchedule? ParseCron(string? cron, out string? expression, Dictionary<string, string[]> problems)
    {
        expression = null;
        if (string.IsNullOrWhiteSpace(cron))
        {
            problems[CronField] = ["is required: 5 fields, minute hour day-of-month month day-of-week (such as '30 2 * * *')."];
            return null;
        }

        var fields = cron.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length != 5)
        {
            problems[CronField] = [$"'{cron}' has {fields.Length} field(s); give exactly 5: minute hour day-of-month month day-of-week (seconds and years are not supported)."];
            return null;
        }

        // Each field alone first, so the message names the field that is wrong.
        for (var i = 0; i < fields.Length; i++)
        {
            var probe = string.Join(' ', fields.Select((f, j) => j == i ? f : "*"));
            var error = CrontabSchedule.TryParse<string?>(probe, new CrontabSchedule.ParseOptions { IncludingSeconds = false }, _ => null, e => e().Message);
            if (error is not null)
            {
                problems[CronField] = [$"the {FieldNames[i]} field '{fields[i]}' is invalid: {error}"];
                return null;
            }
        }

        expression = string.Join(' ', fields);
        return CrontabSchedule.TryParse(expression, new CrontabSchedule.ParseOptions { IncludingSeconds = false })
            ?? throw new CronScheduleException($"Cron '{expression}' was accepted field by field but not as a whole.");
    }

    private static DateTimeZone? FindZone(string? timezone, Dictionary<string, string[]> problems)
    {
        if (string.IsNullOrWhiteSpace(timezone))
        {
            problems[TimezoneField] = ["is required: an IANA time zone such as 'Europe/Berlin', 'America/New_York' or 'UTC'."];
            return null;
        }

        var source = TzdbDateTimeZoneSource.Default;
        if (!source.CanonicalIdMap.TryGetValue(timezone, out var canonical))
        {
            problems[TimezoneField] = [$"'{timezone}' is not an IANA time zone (TZDB {source.TzdbVersion}); use a name such as 'Europe/Berlin', 'America/New_York' or 'UTC' (case matters)."];
            return null;
        }

        return DateTimeZoneProviders.Tzdb[canonical];
    }
}

/// <summary>A cron schedule cannot produce an occurrence (it never fires within the search horizon).</summary>
public sealed class CronScheduleException(string message) : Exception(message);
