using System.Text;
using System.Text.RegularExpressions;
using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Pipelines;

public sealed partial class SqlTemplateTests
{
    private const string Source = "configs/gcp/example/dryrun.yml";
    private const string Field = "steps[0].config.query";

    private static readonly DateOnly RunDate = new(2025, 11, 20);

    private static readonly Dictionary<string, object?> RunValues = new(StringComparer.Ordinal)
    {
        ["date"] = RunDate,
        ["start_date"] = new DateOnly(2025, 11, 1),
        ["end_date"] = RunDate,
        ["org_slug"] = "acme",
        ["run_id"] = "r-1",
        ["nothing"] = null,
    };

    /// <summary>Names bound in the properties.</summary>
    private static readonly string[] Names = ["date", "start_date", "end_date", "org_slug", "run_id", "x1"];

    /// <summary>
    /// Template tokens for the properties. None holds a quote, so every placeholder is outside quotes; tokens are
    /// joined by spaces, so lone braces never form a placeholder and a marker never runs into the next token.
    /// </summary>
    private static readonly string[] SafeTokens =
        ["SELECT", "*", "FROM", "t", "WHERE", "a", "=", "<=", "AND", "OR", "(", ")", ",", "1", "42", "::date", "\n", "{", "}", "{}", "{ x }", "COUNT(*)", "ORDER", "BY"];

    /// <summary>Every character the generated templates (and so the bound SQL) can contain.</summary>
    private static readonly HashSet<char> TemplateAlphabet =
        [.. string.Concat(SafeTokens).Concat(string.Concat(Names)).Concat(" @{}")];

    /// <summary>Values an attacker would try; each holds a character no template can contain.</summary>
    private static readonly string[] HostileValues =
    [
        "'", "''", "';", "; DROP TABLE x; --", "'; DROP TABLE x; --", "--", "/* */", "\"", "\\'", "a'b", "x\ny",
        "\r\n", "\0", "é", "ünïcödé", "😀", "\u202e", "\u2028", "' OR '1'='1", "1; SELECT pg_sleep(10)", "{date}'", "$1",
        "@date;", "`", "\t",
    ];

    private static Gen<string> HostileValue { get; } = Gen.OneOf(
        Gen.Elements(HostileValues),
        from any in ArbMap.Default.ArbFor<string>().Generator.Select(s => s ?? string.Empty)
        from hostile in Gen.Elements(HostileValues)
        from shape in Gen.Choose(0, 2)
        select shape switch
        {
            0 => hostile + any,
            1 => any + hostile,
            _ => any + hostile + any,
        });

    /// <summary>A template segment: a placeholder name or a safe token.</summary>
    private static Gen<(bool IsPlaceholder, string Text)> Segment { get; } = Gen.Frequency(
        (1, Gen.Elements(Names).Select(n => (true, n))),
        (2, Gen.Elements(SafeTokens).Select(t => (false, t))));

    private static Gen<(Dictionary<string, object?> Values, List<(bool IsPlaceholder, string Text)> Segments)> BindingCase { get; } =
        from values in Gen.ArrayOf(HostileValue, Names.Length)
        from segments in Gen.ListOf(Segment)
        select (Names.Zip(values).ToDictionary(p => p.First, p => (object?)p.Second, StringComparer.Ordinal), segments.ToList());

    private static SqlQuery Bind(string sql) => SqlTemplate.Bind(sql, RunValues, Source, Field);

    private static string Join(IEnumerable<(bool IsPlaceholder, string Text)> segments) =>
        string.Join(" ", segments.Select(s => s.IsPlaceholder ? "{" + s.Text + "}" : s.Text));

    [Fact]
    public void Bind_DatePlaceholder_BecomesMarkerWithDateOnlyParameter()
    {
        var query = Bind("SELECT * FROM t WHERE run_date = {date}");

        query.Text.ShouldBe("SELECT * FROM t WHERE run_date = @date");
        query.Parameters.Keys.ShouldBe(["date"]);
        query.Parameters["date"].ShouldBeOfType<DateOnly>().ShouldBe(RunDate);
    }

    [Fact]
    public void Bind_SeveralPlaceholders_BindsEachOnce()
    {
        var query = Bind("SELECT {org_slug} AS org FROM t WHERE d BETWEEN {start_date} AND {end_date} AND e <= {end_date}");

        query.Text.ShouldBe("SELECT @org_slug AS org FROM t WHERE d BETWEEN @start_date AND @end_date AND e <= @end_date");
        query.Parameters.Count.ShouldBe(3);
        query.Parameters["org_slug"].ShouldBe("acme");
        query.Parameters["start_date"].ShouldBe(new DateOnly(2025, 11, 1));
        query.Parameters["end_date"].ShouldBe(RunDate);
    }

    [Fact]
    public void Bind_PostgresCastAfterPlaceholder_KeepsTheCast()
    {
        Bind("generate_series({start_date}::date, {end_date}::date, interval '1 day')").Text
            .ShouldBe("generate_series(@start_date::date, @end_date::date, interval '1 day')");
    }

    [Fact]
    public void Bind_NullValue_IsBoundAsNull()
    {
        var query = Bind("SELECT {nothing}");

        query.Text.ShouldBe("SELECT @nothing");
        query.Parameters.ContainsKey("nothing").ShouldBeTrue();
        query.Parameters["nothing"].ShouldBeNull();
    }

    [Theory]
    [InlineData("SELECT '{date}'")]
    [InlineData("SELECT 'run of {date} for {org_slug}' AS label")]
    [InlineData("SELECT 'it''s {date}'")]
    [InlineData("SELECT '{nope}'")]
    public void Bind_PlaceholderInsideQuotes_LeftLiteral(string sql)
    {
        var query = Bind(sql);

        query.Text.ShouldBe(sql);
        query.Parameters.ShouldBeEmpty();
    }

    [Fact]
    public void Bind_QuotedAndUnquotedPlaceholders_BindsOnlyTheUnquoted()
    {
        var query = Bind("SELECT '{date}' AS literal, {date} AS bound");

        query.Text.ShouldBe("SELECT '{date}' AS literal, @date AS bound");
        query.Parameters.Keys.ShouldBe(["date"]);
    }

    [Theory]
    [InlineData("SELECT JSON '{\"a\": 1}'")]
    [InlineData("SELECT {\"a\": 1}")]
    [InlineData("SELECT {}")]
    [InlineData("SELECT { date }")]
    [InlineData("SELECT {Date}")]
    [InlineData("SELECT {1abc}")]
    [InlineData("SELECT {a-b}")]
    [InlineData("SELECT {date")]
    [InlineData("SELECT date}")]
    [InlineData("SELECT ARRAY[1,2] @> ARRAY[1]")]
    public void Bind_JsonLikeOrNonPlaceholderBraces_LeftUntouched(string sql)
    {
        var query = Bind(sql);

        query.Text.ShouldBe(sql);
        query.Parameters.ShouldBeEmpty();
    }

    [Fact]
    public void Bind_JsonAroundPlaceholder_BindsOnlyThePlaceholder()
    {
        var query = Bind("SELECT {\"k\": {date}}");

        query.Text.ShouldBe("SELECT {\"k\": @date}");
        query.Parameters.Keys.ShouldBe(["date"]);
    }

    [Fact]
    public void Bind_UnknownPlaceholder_ThrowsNamingFileFieldAndPlaceholder()
    {
        var ex = Should.Throw<ConfigurationErrorException>(() => Bind("SELECT * FROM t WHERE d = {dat}"));

        ex.File.ShouldBe(Source);
        ex.Field.ShouldBe(Field);
        ex.Problem.ShouldContain("'{dat}'");
        ex.Message.ShouldContain(Source);
        ex.Message.ShouldContain(Field);
    }

    [Fact]
    public void Bind_InjectionValue_IsBoundNotSpliced()
    {
        var values = new Dictionary<string, object?> { ["org_slug"] = "'; DROP TABLE x; --" };

        var query = SqlTemplate.Bind("SELECT * FROM t WHERE org = {org_slug}", values, Source, Field);

        query.Text.ShouldBe("SELECT * FROM t WHERE org = @org_slug");
        query.Parameters["org_slug"].ShouldBe("'; DROP TABLE x; --");
    }

    [Fact]
    public void Bind_ShippedExampleQueries_BindEveryPlaceholder()
    {
        var pipeline = PipelineLoader.LoadFile(Path.Combine(RepoPaths.Configs, "gcp", "example", "dryrun.yml"), "gcp/example/dryrun");
        var step = pipeline.Steps.Single();
        var values = PipelineLoader.BuiltInPlaceholders.ToDictionary(n => n, n => (object?)("value of " + n), StringComparer.Ordinal);

        foreach (var key in new[] { "query_sqlite", "query_postgres" })
        {
            var query = SqlTemplate.Bind((string)step.Config[key]!, values, pipeline.SourceFile, $"steps[0].config.{key}");

            PlaceholderPattern().IsMatch(query.Text).ShouldBeFalse(query.Text);
            query.Parameters.Keys.Order(StringComparer.Ordinal).ShouldBe(["end_date", "org_slug", "run_id", "start_date"]);
            query.Text.ShouldNotContain("value of");
        }
    }

    [Fact]
    public void Bind_ApostropheInSqlComment_StillBindsLaterPlaceholders()
    {
        var query = Bind("-- don't change the slice\nSELECT * FROM t WHERE d = {date}");

        query.Text.ShouldBe("-- don't change the slice\nSELECT * FROM t WHERE d = @date");
        query.Parameters.Keys.ShouldBe(["date"]);
    }

    [Fact]
    public void Property_HostileValues_NeverReachTheSqlText()
    {
        Prop.ForAll(Arb.From(BindingCase), input =>
            {
                var template = Join(input.Segments);
                var query = SqlTemplate.Bind(template, input.Values, Source, Field);

                // Every value holds a character outside the template alphabet, so it cannot be template text.
                foreach (var value in input.Values.Values.Cast<string>())
                {
                    value.Any(c => !TemplateAlphabet.Contains(c)).ShouldBeTrue();
                    query.Text.ShouldNotContain(value, Case.Sensitive);
                }

                foreach (var name in Names)
                {
                    query.Text.ShouldNotContain("{" + name + "}", Case.Sensitive);
                }
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_EveryPlaceholderBoundExactlyToItsValue()
    {
        Prop.ForAll(Arb.From(BindingCase), input =>
            {
                var query = SqlTemplate.Bind(Join(input.Segments), input.Values, Source, Field);
                var used = input.Segments.Where(s => s.IsPlaceholder).Select(s => s.Text).ToHashSet(StringComparer.Ordinal);

                query.Parameters.Keys.ToHashSet(StringComparer.Ordinal).SetEquals(used).ShouldBeTrue();
                foreach (var name in used)
                {
                    query.Parameters[name].ShouldBeSameAs(input.Values[name]);
                }
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_MarkerCountEqualsPlaceholderCount()
    {
        Prop.ForAll(Arb.From(BindingCase), input =>
            {
                var query = SqlTemplate.Bind(Join(input.Segments), input.Values, Source, Field);
                var markers = MarkerPattern().Matches(query.Text).Select(m => m.Groups[1].Value).ToList();

                markers.ShouldBe(input.Segments.Where(s => s.IsPlaceholder).Select(s => s.Text).ToList());
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_OutputIsTheTemplateWithPlaceholdersReplacedByMarkers()
    {
        Prop.ForAll(Arb.From(BindingCase), input =>
            {
                var expected = string.Join(" ", input.Segments.Select(s => s.IsPlaceholder ? "@" + s.Text : s.Text));

                SqlTemplate.Bind(Join(input.Segments), input.Values, Source, Field).Text.ShouldBe(expected);
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_QuotedSegmentsStayLiteral()
    {
        // Quoted literals may hold placeholders (even unknown ones) and braces; they are never bound.
        var quotedText = Gen.ListOf(Gen.Elements("{date}", "{nope}", "x", "{", "}", " ", "{org_slug}", "--", ";", "{}", "\"")).Select(l => "'" + string.Concat(l) + "'");
        var segment = Gen.OneOf(
            Segment.Select(s => (Quoted: false, s.IsPlaceholder, s.Text)),
            quotedText.Select(q => (Quoted: true, IsPlaceholder: false, Text: q)));
        var gen = Gen.ListOf(segment);

        Prop.ForAll(Arb.From(gen), segments =>
            {
                var values = Names.ToDictionary(n => n, n => (object?)n.ToUpperInvariant(), StringComparer.Ordinal);
                var template = string.Join(" ", segments.Select(s => s.IsPlaceholder ? "{" + s.Text + "}" : s.Text));
                var expected = string.Join(" ", segments.Select(s => s.IsPlaceholder ? "@" + s.Text : s.Text));

                var query = SqlTemplate.Bind(template, values, Source, Field);

                query.Text.ShouldBe(expected);
                query.Parameters.Count.ShouldBe(segments.Where(s => s.IsPlaceholder).Select(s => s.Text).Distinct().Count());
            })
            .Check(PropertyConfig.Default);
    }

    [GeneratedRegex(@"@([a-z_][a-z0-9_]*)")]
    private static partial Regex MarkerPattern();

    [GeneratedRegex(@"\{[a-z_][a-z0-9_]*\}")]
    private static partial Regex PlaceholderPattern();
}
