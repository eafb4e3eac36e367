using System.Globalization;
using Convergence.Core.Scheduling;

namespace Convergence.Core.Tests.Scheduling;

/// <summary>
/// Next-run tables across daylight-saving changes. Every expected instant was worked out by hand from the zone rules
/// of 2026 (written next to each row), not by running the code under test.
/// </summary>
/// <remarks>
/// America/New_York: EST -05:00, EDT -04:00; springs forward Sun 8 Mar 02:00→03:00 (07:00Z), falls back Sun 1 Nov
/// 02:00→01:00 (06:00Z). Europe/Berlin: CET +01:00, CEST +02:00; forward Sun 29 Mar 02:00→03:00 (01:00Z), back Sun 25
/// Oct 03:00→02:00 (01:00Z). Australia/Lord_Howe: LHST +10:30, LHDT +11:00; back Sun 5 Apr 02:00→01:30 (4 Apr 15:00Z),
/// forward Sun 4 Oct 02:00→02:30 (3 Oct 15:30Z).
/// </remarks>
public sealed class CronScheduleTests
{
    public static TheoryData<string, string, string, string, string> NextRuns() => new()
    {
        // cron, zone, after (UTC), expected (UTC), why
        { "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z", "02:30 is in the gap: 03:00 EDT" },
        { "30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "next day 02:30 EDT" },
        { "30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", "2026-03-07T07:30:00Z", "an ordinary day, 02:30 EST" },
        { "30 2 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T07:30:00Z", "02:30 after the fall-back exists once, EST" },
        { "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z", "repeated 01:30: first pass, EDT" },
        { "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "the second pass 01:30 EST does not run" },
        { "30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", "2026-11-02T06:30:00Z", "after in the second pass (01:10 EST): 01:30 already ran" },
        { "*/15 * * * *", "America/New_York", "2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "01:45 EST → 02:00..02:45 collapse into 03:00 EDT" },
        { "*/15 * * * *", "America/New_York", "2026-03-08T06:50:00Z", "2026-03-08T07:00:00Z", "inside the last quarter before the gap" },
        { "*/15 * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z", "the gap ran once; 03:15 EDT" },
        { "*/15 * * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z", "first pass 01:45 EDT" },
        { "*/15 * * * *", "America/New_York", "2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z", "second pass skipped: 02:00 EST" },
        { "*/15 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z", "after at 01:00 EST (second pass)" },
        { "0 * * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "01:00 EST → 02:00 skipped → 03:00 EDT" },
        { "0 * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z", "03:00 was the gap's run; 04:00 EDT" },
        { "0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "01:00 EDT → 01:00 EST skipped → 02:00 EST" },
        { "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "02:30 is in the gap: 03:00 CEST" },
        { "30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "next day 02:30 CEST" },
        { "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "repeated 02:30: first pass, CEST" },
        { "30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "second pass 02:30 CET does not run" },
        { "30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", "2026-10-26T01:30:00Z", "after in the second pass (02:10 CET)" },
        { "*/15 * * * *", "Europe/Berlin", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "01:45 CET → gap → 03:00 CEST" },
        { "*/15 * * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z", "03:15 CEST" },
        { "*/15 * * * *", "Europe/Berlin", "2026-10-25T00:45:00Z", "2026-10-25T02:00:00Z", "02:45 CEST → second pass skipped → 03:00 CET" },
        { "0 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "02:00 CEST → 02:00 CET skipped → 03:00 CET" },
        { "0 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "01:00 CET → 02:00 skipped → 03:00 CEST" },
        { "30 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z", "02:30 LHDT is the first instant after the gap" },
        { "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z", "02:15 is in the 30-minute gap: 02:30 LHDT" },
        { "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z", "next day 02:15 LHDT" },
        { "*/15 * * * *", "Australia/Lord_Howe", "2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z", "01:45 LHST → 02:00, 02:15, 02:30 collapse" },
        { "*/15 * * * *", "Australia/Lord_Howe", "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z", "02:45 LHDT" },
        { "*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T14:45:00Z", "2026-04-04T15:30:00Z", "01:45 LHDT → 01:30, 01:45 LHST skipped → 02:00 LHST" },
        { "*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T15:05:00Z", "2026-04-04T15:30:00Z", "after at 01:35 LHST (second pass)" },
        { "30 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", "2026-04-04T14:30:00Z", "repeated 01:30: first pass, LHDT" },
        { "30 1 * * *", "Australia/Lord_Howe", "2026-04-04T14:30:00Z", "2026-04-05T15:00:00Z", "next day 01:30 LHST" },
        { "0 * * * *", "Australia/Lord_Howe", "2026-04-04T14:00:00Z", "2026-04-04T15:30:00Z", "01:00 LHDT → 02:00 LHST" },
        { "0 * * * *", "Australia/Lord_Howe", "2026-10-03T14:30:00Z", "2026-10-03T15:30:00Z", "01:00 LHST → 02:00 skipped → 02:30 LHDT" },
        { "0 * * * *", "Australia/Lord_Howe", "2026-10-03T15:30:00Z", "2026-10-03T16:00:00Z", "03:00 LHDT" },
        { "30 2 * * *", "America/New_York", "2026-03-09T06:29:59.5Z", "2026-03-09T06:30:00Z", "sub-minute after" },
        { "0 9 * * 1", "Asia/Tokyo", "2026-03-14T00:00:00Z", "2026-03-16T00:00:00Z", "Monday 09:00 JST" },
        { "0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z", "a leap day, two years on" },
    };

    [Theory]
    [MemberData(nameof(NextRuns))]
    public void Next_AcrossDaylightSaving_FollowsThePolicy(string cron, string zone, string after, string expected, string why)
    {
        var schedule = Create(cron, zone);

        var next = schedule.Next(Instant(after));

        next.ShouldBe(Instant(expected), why);
        next.Offset.ShouldBe(TimeSpan.Zero);
    }

    [Fact]
    public void Next_ChainedThroughTheNewYorkFallBack_RunsEachLocalQuarterOnce()
    {
        var schedule = Create("*/15 * * * *", "America/New_York");
        var runs = new List<DateTimeOffset>();
        var at = Instant("2026-11-01T05:20:00Z"); // 01:20 EDT
        for (var i = 0; i < 5; i++)
        {
            at = schedule.Next(at);
            runs.Add(at);
        }

        runs.ShouldBe([
            Instant("2026-11-01T05:30:00Z"), Instant("2026-11-01T05:45:00Z"), Instant("2026-11-01T07:00:00Z"),
            Instant("2026-11-01T07:15:00Z"), Instant("2026-11-01T07:30:00Z"),
        ]);
    }

    [Theory]
    [InlineData("Asia/Tokyo", "2026-03-14T20:00:00Z", "2026-03-15")] // 05:00 JST the next day
    [InlineData("Australia/Lord_Howe", "2026-10-03T15:30:00Z", "2026-10-04")] // 02:30 LHDT
    [InlineData("America/New_York", "2026-03-09T03:00:00Z", "2026-03-08")] // 23:00 EDT the day before
    public void ScheduledLocalDate_OfAnInstant_IsTheZonesCalendarDate(string zone, string occurrence, string expected)
    {
        Create("0 * * * *", zone).ScheduledLocalDate(Instant(occurrence)).ShouldBe(DateOnly.ParseExact(expected, "yyyy-MM-dd", CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("0 2 * *", "4 field(s)")]
    [InlineData("0 0 2 * * *", "6 field(s)")]
    [InlineData("61 2 * * *", "minute field '61'")]
    [InlineData("0 25 * * *", "hour field '25'")]
    [InlineData("0 0 * 13 *", "month field '13'")]
    [InlineData("0 0 * * mon-xyz", "day of week field")]
    [InlineData("0 0 30 2 *", "never fires")]
    [InlineData("", "is required")]
    [InlineData(null, "is required")]
    public void TryCreate_BadCron_NamesTheProblem(string? cron, string expected)
    {
        CronSchedule.TryCreate(cron, "UTC", out var schedule, out var errors).ShouldBeFalse();

        schedule.ShouldBeNull();
        errors.Keys.ShouldBe([CronSchedule.CronField]);
        errors[CronSchedule.CronField].ShouldHaveSingleItem().ShouldContain(expected);
    }

    [Theory]
    [InlineData("Mars/Olympus_Mons")]
    [InlineData("europe/berlin")]
    [InlineData("")]
    [InlineData(null)]
    public void TryCreate_UnknownZone_IsATimezoneError(string? zone)
    {
        CronSchedule.TryCreate("0 2 * * *", zone, out var schedule, out var errors).ShouldBeFalse();

        schedule.ShouldBeNull();
        errors.Keys.ShouldBe([CronSchedule.TimezoneField]);
    }

    [Fact]
    public void TryCreate_BothBad_ReportsBothFields()
    {
        CronSchedule.TryCreate("* * *", "Nowhere/Land", out _, out var errors).ShouldBeFalse();

        errors.Keys.Order(StringComparer.Ordinal).ShouldBe([CronSchedule.CronField, CronSchedule.TimezoneField]);
    }

    [Theory]
    [InlineData("US/Eastern", "America/New_York")]
    [InlineData("UTC", "Etc/UTC")]
    [InlineData("Asia/Calcutta", "Asia/Kolkata")]
    [InlineData("Europe/Berlin", "Europe/Berlin")]
    public void TryCreate_AliasAndExtraSpaces_StoresTheCanonicalZoneAndSingleSpaces(string zone, string canonical)
    {
        var schedule = Create("  30   2 * *  * ", zone);

        schedule.Timezone.ShouldBe(canonical);
        schedule.Expression.ShouldBe("30 2 * * *");
    }

    private static CronSchedule Create(string cron, string zone)
    {
        CronSchedule.TryCreate(cron, zone, out var schedule, out var errors).ShouldBeTrue(string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")));
        return schedule!;
    }

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);
}
