using System.Globalization;
using Convergence.Core.Errors;
using Convergence.Core.Pipelines;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Pipelines;

public sealed class RunParametersTests
{
    private const int Max = PipelineDefinition.DefaultMaxDateRangeDays;

    private static readonly DateOnly Today = new(2025, 11, 20);

    private static RunParameters Parse(params (string Key, string Value)[] parameters) =>
        Parse(Max, parameters);

    private static RunParameters Parse(int max, params (string Key, string Value)[] parameters) =>
        RunParameters.Parse(parameters.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal), Today, max);

    private static RequestValidationException ParseFails(params (string Key, string Value)[] parameters) =>
        Should.Throw<RequestValidationException>(() => Parse(parameters));

    private static string Iso(DateOnly date) => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    [Fact]
    public void Parse_DateOnly_SliceIsThatDay()
    {
        Parse(("date", "2025-11-03")).ShouldBe(new RunParameters(new DateOnly(2025, 11, 3), new DateOnly(2025, 11, 3), new DateOnly(2025, 11, 3)));
    }

    [Fact]
    public void Parse_StartAndEnd_SliceIsTheRangeAndDateIsTheEnd()
    {
        var slice = Parse(("start_date", "2025-11-01"), ("end_date", "2025-11-20"));

        slice.StartDate.ShouldBe(new DateOnly(2025, 11, 1));
        slice.EndDate.ShouldBe(new DateOnly(2025, 11, 20));
        slice.Date.ShouldBe(new DateOnly(2025, 11, 20));
    }

    [Fact]
    public void Parse_StartEqualsEnd_SliceIsOneDay()
    {
        Parse(1, ("start_date", "2025-11-20"), ("end_date", "2025-11-20")).ShouldBe(new RunParameters(Today, Today, Today));
    }

    [Fact]
    public void Parse_NeitherDateNorRange_SliceIsToday()
    {
        Parse().ShouldBe(new RunParameters(Today, Today, Today));
    }

    [Fact]
    public void Parse_OtherParametersOnly_SliceIsToday()
    {
        Parse(("org_slug", "acme"), ("force_recreate_tables", "true")).ShouldBe(new RunParameters(Today, Today, Today));
    }

    [Fact]
    public void Parse_LeapDay_Accepted()
    {
        Parse(("date", "2024-02-29")).Date.ShouldBe(new DateOnly(2024, 2, 29));
    }

    [Theory]
    [InlineData("date", "2025-13-01")]
    [InlineData("date", "20251120")]
    [InlineData("date", "2025-11-20T00:00")]
    [InlineData("date", "2025-02-29")]
    [InlineData("date", "2025-11-31")]
    [InlineData("date", "2025-1-5")]
    [InlineData("date", "25-11-20")]
    [InlineData("date", "11/20/2025")]
    [InlineData("date", "2025-11-20 ")]
    [InlineData("date", " 2025-11-20")]
    [InlineData("date", "")]
    [InlineData("date", "today")]
    [InlineData("date", "2025-11-20Z")]
    [InlineData("date", "\u0662\u0660\u0662\u0665-\u0661\u0661-\u0662\u0660")]
    [InlineData("date", "２０２５-１１-２０")]
    [InlineData("start_date", "2025-13-01")]
    [InlineData("start_date", "20251120")]
    [InlineData("start_date", "2025-11-20T00:00")]
    [InlineData("end_date", "2025-13-01")]
    [InlineData("end_date", "20251120")]
    [InlineData("end_date", "2025-11-20T00:00")]
    public void Parse_NotAnIsoDate_ErrorNamesTheField(string field, string text)
    {
        var parameters = field == "date"
            ? new[] { (field, text) }
            : field == "start_date"
                ? new[] { (field, text), ("end_date", "2025-11-20") }
                : new[] { ("start_date", "2025-11-01"), (field, text) };

        var ex = ParseFails(parameters);

        ex.Errors.Keys.ShouldBe([field]);
        ex.Errors[field].ShouldHaveSingleItem().ShouldContain("is not an ISO date (yyyy-MM-dd)");
        ex.Errors[field][0].ShouldContain($"'{text}'");
        ex.Message.ShouldContain(field);
    }

    [Fact]
    public void Parse_BothRangeEndsInvalid_ReportsBoth()
    {
        var ex = ParseFails(("start_date", "yesterday"), ("end_date", "2025/11/20"));

        ex.Errors.Keys.Order(StringComparer.Ordinal).ShouldBe(["end_date", "start_date"]);
    }

    [Fact]
    public void Parse_StartAfterEnd_ErrorNamesStartDate()
    {
        var ex = ParseFails(("start_date", "2025-11-21"), ("end_date", "2025-11-20"));

        ex.Errors.Keys.ShouldBe(["start_date"]);
        ex.Errors["start_date"].ShouldHaveSingleItem().ShouldContain("after end_date");
    }

    [Theory]
    [InlineData("start_date")]
    [InlineData("end_date")]
    [InlineData("start_date", "end_date")]
    public void Parse_DateTogetherWithRange_ErrorNamesDate(params string[] rangeKeys)
    {
        var parameters = rangeKeys.Select(k => (k, "2025-11-01")).Prepend(("date", "2025-11-01")).ToArray();

        var ex = ParseFails(parameters);

        ex.Errors.Keys.ShouldBe(["date"]);
        ex.Errors["date"].ShouldHaveSingleItem().ShouldContain("not both");
    }

    [Theory]
    [InlineData("start_date", "end_date")]
    [InlineData("end_date", "start_date")]
    public void Parse_OnlyOneRangeEnd_ErrorNamesTheMissingEnd(string given, string missing)
    {
        var ex = ParseFails((given, "2025-11-01"));

        ex.Errors.Keys.ShouldBe([missing]);
        ex.Errors[missing].ShouldHaveSingleItem().ShouldContain("go together");
    }

    [Fact]
    public void Parse_RangeLongerThanMax_ErrorNamesEndDate()
    {
        var start = new DateOnly(2025, 1, 1);

        var ex = ParseFails(("start_date", Iso(start)), ("end_date", Iso(start.AddDays(Max))));

        ex.Errors.Keys.ShouldBe(["end_date"]);
        ex.Errors["end_date"].ShouldHaveSingleItem().ShouldContain($"the range is {Max + 1} days");
        ex.Errors["end_date"][0].ShouldContain($"at most {Max}");
    }

    [Fact]
    public void Parse_RangeOfExactlyMaxDays_Accepted()
    {
        var start = new DateOnly(2025, 1, 1);
        var end = start.AddDays(Max - 1);

        var slice = Parse(("start_date", Iso(start)), ("end_date", Iso(end)));

        (slice.EndDate.DayNumber - slice.StartDate.DayNumber + 1).ShouldBe(Max);
        slice.ShouldBe(new RunParameters(end, start, end));
    }

    [Fact]
    public void Parse_CustomMax_IsHonoured()
    {
        Parse(31, ("start_date", "2025-01-01"), ("end_date", "2025-01-31")).EndDate.ShouldBe(new DateOnly(2025, 1, 31));
        Should.Throw<RequestValidationException>(() => Parse(31, ("start_date", "2025-01-01"), ("end_date", "2025-02-01")))
            .Errors.Keys.ShouldBe(["end_date"]);
    }

    [Fact]
    public void Placeholders_AreTheSliceDates()
    {
        var slice = Parse(("start_date", "2025-11-01"), ("end_date", "2025-11-20"));

        slice.Placeholders().ToDictionary(p => p.Key, p => p.Value).ShouldBe(new Dictionary<string, object?>
        {
            ["date"] = new DateOnly(2025, 11, 20),
            ["start_date"] = new DateOnly(2025, 11, 1),
            ["end_date"] = new DateOnly(2025, 11, 20),
        });
    }

    /// <summary>Any valid range shorter than the maximum: its start, its length (0-based) and the maximum.</summary>
    private static Gen<(DateOnly Start, DateOnly End, int Max)> ValidRange { get; } =
        from max in Gen.Choose(1, 3660)
        from length in Gen.Choose(0, max - 1)
        from start in Gen.Choose(0, DateOnly.MaxValue.DayNumber - length)
        select (DateOnly.FromDayNumber(start), DateOnly.FromDayNumber(start + length), max);

    [Fact]
    public void Property_AnyRangeWithinMax_ParsesToThatRange()
    {
        Prop.ForAll(Arb.From(ValidRange), input =>
            {
                var slice = Parse(input.Max, ("start_date", Iso(input.Start)), ("end_date", Iso(input.End)));

                slice.StartDate.ShouldBe(input.Start);
                slice.EndDate.ShouldBe(input.End);
                slice.Date.ShouldBe(input.End);
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_AnyRangeLongerThanMax_ErrorNamesEndDate()
    {
        var gen =
            from max in Gen.Choose(1, 3660)
            from extra in Gen.Choose(0, 400)
            from start in Gen.Choose(0, DateOnly.MaxValue.DayNumber - max - extra)
            select (Start: DateOnly.FromDayNumber(start), End: DateOnly.FromDayNumber(start + max + extra), Max: max);

        Prop.ForAll(Arb.From(gen), input =>
            {
                var ex = Should.Throw<RequestValidationException>(() => Parse(input.Max, ("start_date", Iso(input.Start)), ("end_date", Iso(input.End))));

                ex.Errors.Keys.ShouldBe(["end_date"]);
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_AnyReversedRange_ErrorNamesStartDate()
    {
        Prop.ForAll(Arb.From(ValidRange.Where(r => r.Start != r.End)), input =>
            {
                var ex = Should.Throw<RequestValidationException>(() => Parse(input.Max, ("start_date", Iso(input.End)), ("end_date", Iso(input.Start))));

                ex.Errors.Keys.ShouldBe(["start_date"]);
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_AnyValidDate_IsAOneDaySlice()
    {
        var gen = Gen.Choose(0, DateOnly.MaxValue.DayNumber).Select(DateOnly.FromDayNumber);

        Prop.ForAll(Arb.From(gen), date =>
            {
                Parse(("date", Iso(date))).ShouldBe(new RunParameters(date, date, date));
            })
            .Check(PropertyConfig.Default);
    }
}
