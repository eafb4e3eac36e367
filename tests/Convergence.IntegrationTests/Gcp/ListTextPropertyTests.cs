using System.Globalization;
using System.Text;
using System.Text.Json;
using Convergence.Processors.Gcp;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>
/// Properties of the list-text parser of GCP billing exports: credits and labels written the way Python prints them
/// (the flattened CSV) or as JSON (BigQuery's export) parse back to exactly what was written.
/// </summary>
public sealed class ListTextPropertyTests
{
    private static readonly Config Checks = Config.QuickThrowOnFailure.WithMaxTest(500);

    /// <summary>Text with quotes of both kinds, backslashes, control and non-ASCII characters.</summary>
    private static readonly Gen<string> Text = Gen.Choose(0, 12)
        .SelectMany(n => Gen.ArrayOf(Gen.Elements("abcXYZ09 _-:.,/'\"\\{}[]()\n\té✓€𝄞".EnumerateRunes().Select(r => r.ToString()).ToArray()), n))
        .Select(parts => string.Concat(parts));

    /// <summary>Exact decimals of assorted scales and signs, as exports carry them.</summary>
    private static readonly Gen<decimal> Amount = Gen.Zip(Gen.Choose(-2_000_000, 2_000_000), Gen.Choose(0, 12))
        .Select(t => new decimal(Math.Abs(t.Item1), 0, 0, t.Item1 < 0, (byte)t.Item2));

    private static readonly Gen<Credit> CreditGen =
        Gen.Zip(Gen.Zip(Text, Amount), Gen.Elements<string?>(null, "PROMOTION", "SUSTAINED_USAGE_DISCOUNT", "FREE_TIER"))
            .Select(t => new Credit(t.Item1.Item1, t.Item1.Item2, t.Item2));

    private static readonly Gen<(string Key, string? Value)[]> LabelsGen = Gen.Choose(0, 5)
        .SelectMany(n => Gen.ArrayOf(Gen.Zip(Text, Gen.Frequency((5, Text.Select(s => (string?)s)), (1, Gen.Constant<string?>(null)))), n))
        .Select(pairs => pairs.DistinctBy(p => p.Item1).Select(p => (p.Item1, p.Item2)).ToArray());

    private static readonly Gen<Format> FormatGen = Gen.Elements(Format.Python, Format.Json, Format.PythonSpaced);

    [Fact]
    public void Property_PlainDecimals_ReadAsTheFrameworkParserReadsThem()
    {
        // Digit runs around an optional sign and point, up to 22 digits (past the fast path's 19), and junk the fast path
        // must refuse: what it accepts has decimal.TryParse's value and scale (trailing zeros and all), bit for bit.
        var digits = Gen.Choose(0, 22).SelectMany(n => Gen.ArrayOf(Gen.Elements("0123456789".ToCharArray()), n)).Select(c => new string(c));
        var gen = Gen.Zip(Gen.Zip(Gen.Elements("", "", "-", "+", " "), digits), Gen.Zip(Gen.Elements("", ".", ".", "e", "..", "x"), digits))
            .Select(t => t.Item1.Item1 + t.Item1.Item2 + t.Item2.Item1 + t.Item2.Item2);
        Prop.ForAll(Arb.From(gen), text =>
            {
                var styles = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;
                var expected = decimal.TryParse(text, styles, CultureInfo.InvariantCulture, out var reference);
                ListText.TryDecimal(text, out var value).ShouldBe(expected, text);
                if (ListText.TryPlainDecimal(text, out var fast))
                {
                    expected.ShouldBeTrue(text);
                    decimal.GetBits(fast).ShouldBe(decimal.GetBits(reference), text);
                }

                if (expected)
                {
                    decimal.GetBits(value).ShouldBe(decimal.GetBits(reference), text);
                }
            })
            .Check(Checks);

        foreach (var text in new[] { "1.308726", "53264264.0", "0.049606211483478546", "-0.517595", "1.0", "9999999999999999999", "-1234567890.123456789", "0.000" })
        {
            ListText.TryPlainDecimal(text, out var fast).ShouldBeTrue(text);
            decimal.GetBits(fast).ShouldBe(decimal.GetBits(decimal.Parse(text, CultureInfo.InvariantCulture)), text);
        }

        foreach (var text in new[] { "-0", "-0.00", "+1", ".5", "5.", "1e3", "10000000000000000000", "", "-", "1,5" })
        {
            ListText.TryPlainDecimal(text, out _).ShouldBeFalse(text);
        }
    }

    [Fact]
    public void Property_Credits_ParseBackToTheirAmountsAndSum()
    {
        var gen = Gen.Zip(Gen.Choose(0, 5).SelectMany(n => Gen.ArrayOf(CreditGen, n)), FormatGen);
        Prop.ForAll(Arb.From(gen), input =>
            {
                var (credits, format) = input;
                var text = Render(credits.Select(c => (object?)c.ToDict()).ToList(), format);

                var (json, total) = ListText.Credits(text);

                total.ShouldBe(credits.Sum(c => c.Amount), text);
                using var document = JsonDocument.Parse(json);
                var parsed = document.RootElement.EnumerateArray().ToList();
                parsed.Count.ShouldBe(credits.Length, text);
                for (var i = 0; i < credits.Length; i++)
                {
                    parsed[i].GetProperty("name").GetString().ShouldBe(credits[i].Name, text);
                    parsed[i].GetProperty("amount").GetDecimal().ShouldBe(credits[i].Amount, text);
                    parsed[i].GetProperty("type").GetString().ShouldBe(credits[i].Type, text);
                }
            })
            .Check(Checks);
    }

    [Fact]
    public void Property_Credits_StreamedStraightToJson_MatchTheParsedTree()
    {
        // Credits go from text to JSON without the parsed tree; the tree's result is the reference, for whole texts and
        // for every cut of one (same JSON and sum, or the same error).
        var gen = Gen.Zip(Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(CreditGen, n)), FormatGen)
            .SelectMany(t =>
            {
                var text = Render(t.Item1.Select(c => (object?)c.ToDict()).ToList(), t.Item2);
                return Gen.Frequency((1, Gen.Constant(text)), (2, Gen.Choose(0, text.Length).Select(cut => text[..cut])));
            });
        Prop.ForAll(Arb.From(gen), text => ShouldMatchTree(text)).Check(Checks);
    }

    [Theory]
    [InlineData("[{'name': 'a', 'amount': -1.5}, {'name': 'b', 'amount': Decimal('-0.25')}]")]
    [InlineData("({'amount': 1, 'amount': 2},)")]
    [InlineData("[{'amount': 'x', 'amount': 2}]")]
    [InlineData("[{'amount': 2, 'amount': 'x'}]")]
    [InlineData("[{'amount': 1, 'nested': ({'a': [True, False, None]},)}, {'amount': -0.5, 'n': {'amount': 9}}]")]
    [InlineData("[{'na\\'me': 'it\\'s \\u00e9', \"amount\": 1e-06, 'x': \"q\\\"\"}]")]
    [InlineData("[{'amount': 1}, 2]")]
    [InlineData("[{'amount': None}]")]
    [InlineData("[{'amount': True}]")]
    [InlineData("[{'name': 'a'}]")]
    [InlineData("{'amount': 1}")]
    [InlineData("'x'")]
    [InlineData("[{'amount': 1}] x")]
    [InlineData("[{'amount': 1]")]
    [InlineData("[{amount: 1}]")]
    [InlineData("[{'amount': nan}]")]
    [InlineData("[{'amount': 1e400}]")]
    [InlineData("  [ { 'amount' : 3 , } , ]  ")]
    public void Credits_StreamedStraightToJson_MatchTheParsedTree(string text) => ShouldMatchTree(text);

    private static void ShouldMatchTree(string text)
    {
        (string Json, decimal Total)? expected = null;
        string? expectedError = null;
        try
        {
            expected = ListText.CreditsFromTree(text);
        }
        catch (ListTextException ex)
        {
            expectedError = ex.Message;
        }

        if (string.IsNullOrWhiteSpace(text) || text.Trim() == "[]")
        {
            ListText.Credits(text).ShouldBe(("[]", 0m), text);
        }
        else if (expectedError is not null)
        {
            Should.Throw<ListTextException>(() => ListText.Credits(text), text).Message.ShouldBe(expectedError, text);
        }
        else
        {
            var actual = ListText.Credits(text);
            actual.Json.ShouldBe(expected!.Value.Json, text);
            actual.Total.ShouldBe(expected.Value.Total, text);
            actual.Total.Scale.ShouldBe(expected.Value.Total.Scale, text);
        }
    }

    [Fact]
    public void Property_Labels_ParseBackToTheSameMap()
    {
        Prop.ForAll(Arb.From(Gen.Zip(LabelsGen, FormatGen)), input =>
            {
                var (labels, format) = input;
                var text = Render(labels.Select(l => (object?)new List<(string, object?)> { ("key", l.Key), ("value", l.Value) }).ToList(), format);

                using var document = JsonDocument.Parse(ListText.Labels(text));

                var parsed = document.RootElement.EnumerateObject().Select(p => (p.Name, p.Value.ValueKind == JsonValueKind.Null ? null : p.Value.GetString())).ToArray();
                parsed.ShouldBe(labels, text);
            })
            .Check(Checks);
    }

    [Fact]
    public void Property_TruncatedText_IsRejectedNeverMisread()
    {
        var gen = Gen.Zip(Gen.Choose(1, 4).SelectMany(n => Gen.ArrayOf(CreditGen, n)), FormatGen)
            .SelectMany(t =>
            {
                var text = Render(t.Item1.Select(c => (object?)c.ToDict()).ToList(), t.Item2);
                return Gen.Choose(1, text.Length - 1).Select(cut => text[..cut]);
            });
        Prop.ForAll(Arb.From(gen), truncated =>
                Should.Throw<ListTextException>(() => ListText.Credits(truncated), truncated))
            .Check(Checks);
    }

    [Theory]
    [InlineData("[{'name': 'a', 'amount': -1.5}, {'name': 'b', 'amount': Decimal('-0.25')}]", "-1.75")]
    [InlineData("[{\"name\": \"a\", \"amount\": -5e-06, \"full_name\": null}]", "-0.000005")]
    [InlineData("[{'amount': 2.3198314011096954e-05,},]", "0.000023198314011096954")]
    [InlineData("[{'amount': 1, 'nested': ({'a': [True, False, None]},)}]", "1")]
    [InlineData("[]", "0")]
    [InlineData("", "0")]
    public void Credits_Examples_SumExactly(string text, string expected) =>
        ListText.Credits(text).Total.ShouldBe(decimal.Parse(expected, CultureInfo.InvariantCulture));

    [Theory]
    [InlineData("[{'name': 'a'}]", "no amount")]
    [InlineData("[{'name': 'a', 'amount': 'x'}]", "not a number")]
    [InlineData("[{'amount': 1e400}]", "not a decimal number")]
    [InlineData("[{'amount': nan}]", "unknown word 'nan'")]
    [InlineData("{'amount': 1}", "must be a list")]
    [InlineData("[{'amount': 1}] x", "unexpected text")]
    [InlineData("[{'amount': 1]", "expected ',' or '}'")]
    public void Credits_Invalid_AreRejectedWithTheReason(string text, string reason) =>
        Should.Throw<ListTextException>(() => ListText.Credits(text)).Message.ShouldContain(reason);

    public enum Format
    {
        Python,
        PythonSpaced,
        Json,
    }

    public sealed record Credit(string Name, decimal Amount, string? Type)
    {
        public List<(string, object?)> ToDict() => [("name", Name), ("amount", Amount), ("full_name", null), ("id", Name), ("type", Type)];
    }

    /// <summary>Writes a value the way Python's repr (or JSON) would.</summary>
    private static string Render(object? value, Format format)
    {
        var text = new StringBuilder();
        Write(text, value, format);
        return text.ToString();
    }

    private static void Write(StringBuilder text, object? value, Format format)
    {
        var json = format == Format.Json;
        var space = format == Format.PythonSpaced ? " " : string.Empty;
        switch (value)
        {
            case null:
                text.Append(json ? "null" : "None");
                break;
            case string s:
                text.Append(json ? JsonSerializer.Serialize(s) : PythonRepr(s));
                break;
            case decimal d:
                // Python prints floats in exponent form below 1e-4; exports carry both spellings.
                text.Append(Math.Abs(d) is > 0 and < 0.0001m ? Exponent(d) : d.ToString(CultureInfo.InvariantCulture));
                break;
            case List<(string Key, object? Value)> dict:
                text.Append('{').Append(space);
                for (var i = 0; i < dict.Count; i++)
                {
                    text.Append(i == 0 ? string.Empty : ", ");
                    Write(text, dict[i].Key, format);
                    text.Append(": ");
                    Write(text, dict[i].Value, format);
                }

                text.Append(space).Append('}');
                break;
            case List<object?> list:
                text.Append('[').Append(space);
                for (var i = 0; i < list.Count; i++)
                {
                    text.Append(i == 0 ? string.Empty : ", ");
                    Write(text, list[i], format);
                }

                text.Append(space).Append(']');
                break;
            default:
                throw new ArgumentException(value.GetType().Name);
        }
    }

    /// <summary>An exact exponent spelling of <paramref name="d"/>, such as -5e-06 or 1.25e-05.</summary>
    private static string Exponent(decimal d)
    {
        var digits = Math.Abs(d).ToString(CultureInfo.InvariantCulture).TrimStart('0', '.');
        var exponent = -(Math.Abs(d).ToString(CultureInfo.InvariantCulture).Length - 2 - digits.Length + 1);
        var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
        return $"{(d < 0 ? "-" : string.Empty)}{mantissa}e-{(-exponent).ToString("00", CultureInfo.InvariantCulture)}";
    }

    /// <summary>Python's repr of a str: single quotes unless the text has a single quote and no double quote.</summary>
    private static string PythonRepr(string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var text = new StringBuilder().Append(quote);
        foreach (var c in s)
        {
            text.Append(c switch
            {
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                _ when c == quote => "\\" + c,
                _ => c.ToString(),
            });
        }

        return text.Append(quote).ToString();
    }
}
