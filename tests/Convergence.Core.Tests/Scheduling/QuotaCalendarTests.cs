using System.Globalization;
using Convergence.Core.Organizations;
using Convergence.Core.Scheduling;

namespace Convergence.Core.Tests.Scheduling;

/// <summary>Daily resets at midnight UTC; monthly on the subscription's anniversary, clamped to short months.</summary>
public sealed class QuotaCalendarTests
{
    [Theory]
    [InlineData("2030-03-01", "2030-03-14", "2030-03-01")]
    [InlineData("2030-01-15", "2030-03-14", "2030-02-15")]
    [InlineData("2030-01-15", "2030-03-15", "2030-03-15")]
    [InlineData("2029-01-31", "2030-02-28", "2030-02-28")] // February has no 31st: the anniversary is its last day
    [InlineData("2029-01-31", "2030-02-27", "2030-01-31")]
    [InlineData("2029-01-31", "2030-03-30", "2030-02-28")]
    [InlineData("2029-01-31", "2030-03-31", "2030-03-31")]
    [InlineData("2027-12-29", "2028-02-29", "2028-02-29")] // leap year
    [InlineData("2030-01-10", "2030-01-05", "2029-12-10")] // across the year
    public void MonthStart_IsTheLatestAnniversaryOnOrBeforeTheDay(string start, string day, string expected) =>
        QuotaCalendar.MonthStart(Date(start), Date(day)).ShouldBe(Date(expected));

    [Theory]
    [InlineData("2030-03-01", "2030-03-14T12:00:00Z", "2030-04-01T00:00:00Z")]
    [InlineData("2029-01-31", "2030-01-31T00:00:00Z", "2030-02-28T00:00:00Z")]
    [InlineData("2029-01-31", "2030-02-28T23:59:59Z", "2030-03-31T00:00:00Z")]
    [InlineData("2030-01-15", "2030-12-20T08:00:00Z", "2031-01-15T00:00:00Z")]
    public void NextMonthlyReset_IsMidnightUtcOfTheNextAnniversary(string start, string now, string expected) =>
        QuotaCalendar.NextMonthlyReset(Date(start), At(now)).ShouldBe(At(expected));

    [Theory]
    [InlineData("2030-03-14T12:00:00Z", "2030-03-15T00:00:00Z")]
    [InlineData("2030-03-14T00:00:00Z", "2030-03-15T00:00:00Z")]
    [InlineData("2030-12-31T23:59:59Z", "2031-01-01T00:00:00Z")]
    public void NextDailyReset_IsTheComingMidnightUtc(string now, string expected) =>
        QuotaCalendar.NextDailyReset(At(now)).ShouldBe(At(expected));

    [Theory]
    [InlineData("ACTIVE", null, true)]
    [InlineData("TRIAL", null, true)]
    [InlineData("TRIAL", "2030-03-14T12:00:01Z", true)]
    [InlineData("TRIAL", "2030-03-14T12:00:00Z", false)]
    [InlineData("EXPIRED", null, false)]
    [InlineData("CANCELLED", null, false)]
    public void IsUsable_ActiveOrTrialBeforeItsEnd(string status, string? trialEnds, bool usable)
    {
        var now = At("2030-03-14T12:00:00Z");
        var subscription = new OrgSubscription(OrgSlug.From("acme"), "STARTER", status, 6, 180, 1, trialEnds is null ? null : At(trialEnds), now, now);

        QuotaCalendar.IsUsable(subscription, now, out var reason).ShouldBe(usable);
        (reason.Length == 0).ShouldBe(usable, reason);
    }

    [Theory]
    [InlineData(5, 100, null, null)]
    [InlineData(6, 100, "daily", "2030-03-15T00:00:00Z")]
    [InlineData(6, 180, "daily", "2030-03-15T00:00:00Z")] // both reached: the daily limit is named (it resets first)
    [InlineData(2, 180, "monthly", "2030-04-01T00:00:00Z")]
    public void Exceeded_NamesTheLimitOneMoreRunWouldBreakAndWhenItResets(int today, int month, string? limit, string? resetsAt)
    {
        var now = At("2030-03-14T12:00:00Z");
        var starter = new OrgSubscription(OrgSlug.From("acme"), "STARTER", "ACTIVE", 6, 180, 1, null, now, now);

        var exceeded = QuotaRules.Exceeded(starter, Date("2030-03-01"), today, month, now);

        exceeded?.Name.ShouldBe(limit);
        exceeded?.ResetsAt.ShouldBe(At(resetsAt!));
        (exceeded is null).ShouldBe(limit is null);
    }

    private static DateOnly Date(string text) => DateOnly.Parse(text, CultureInfo.InvariantCulture);

    private static DateTimeOffset At(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
}
