using System.Globalization;
using Convergence.Storage.Sqlite;

namespace Convergence.IntegrationTests.Storage;

/// <summary>
/// <see cref="SqliteSchema.ParseTimestamp"/> reads the store's own layout digit by digit and leaves anything else to the
/// general parser: both must give what the general parser gives.
/// </summary>
public sealed class SqliteTimestampTests
{
    [Theory]
    [InlineData("2030-03-14T12:00:00.0000000Z")]
    [InlineData("2030-03-14T23:59:59.9999999Z")]
    [InlineData("2024-02-29T05:07:09.1234567Z")]
    [InlineData("0001-01-01T00:00:00.0000000Z")]
    [InlineData("9999-12-31T23:59:59.9999999Z")]
    [InlineData("2030-03-14T12:00:00Z")]
    [InlineData("2030-03-14T12:00:00.123+02:00")]
    [InlineData("2030-03-14 12:00:00")]
    public void ParseTimestamp_AnyLayout_MatchesTheGeneralParser(string text)
    {
        var expected = DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

        var parsed = SqliteSchema.ParseTimestamp(text);

        parsed.ShouldBe(expected);
        parsed.Offset.ShouldBe(TimeSpan.Zero);
    }

    [Fact]
    public void ParseTimestamp_WhatTheStoreWrites_RoundTrips()
    {
        var value = new DateTimeOffset(2031, 12, 31, 23, 59, 58, TimeSpan.Zero).AddTicks(1_234_567);

        SqliteSchema.ParseTimestamp(SqliteSchema.Timestamp(value)!).ShouldBe(value);
    }

    [Theory]
    [InlineData("2030-02-30T12:00:00.0000000Z")]
    [InlineData("2030-13-01T12:00:00.0000000Z")]
    [InlineData("2030-03-14T24:00:00.0000000Z")]
    public void ParseTimestamp_OutOfRangeFieldsInTheStoreLayout_FailAsTheGeneralParserDoes(string text) =>
        Should.Throw<FormatException>(() => SqliteSchema.ParseTimestamp(text));
}
