using System.Text;
using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Pipelines;

public sealed class PlaceholderResolverTests
{
    private const string Source = "configs/demo/pipeline.yml";

    private static readonly Dictionary<string, string> Values = new()
    {
        ["org_slug"] = "acme",
        ["env"] = "prod",
        ["dataset"] = "acme_prod",
        ["run_id"] = "r-123",
        ["empty"] = string.Empty,
    };

    private readonly PlaceholderResolver _resolver = new(Values, Source);

    [Theory]
    [InlineData("{org_slug}", "acme")]
    [InlineData("{dataset}.table", "acme_prod.table")]
    [InlineData("x{org_slug}y{env}z", "xacmeyprodz")]
    [InlineData("{org_slug}{org_slug}", "acmeacme")]
    [InlineData("a{empty}b", "ab")]
    [InlineData("no placeholders", "no placeholders")]
    [InlineData("", "")]
    [InlineData("{org_slug", "{org_slug")]
    [InlineData("org_slug}", "org_slug}")]
    [InlineData("}{org_slug}{", "}acme{")]
    public void Resolve_String_ReplacesKnownPlaceholders(string template, string expected)
    {
        _resolver.Resolve(template, "config.table").ShouldBe(expected);
    }

    [Theory]
    [InlineData("{\"a\": 1}")]
    [InlineData("{ x }")]
    [InlineData("{}")]
    [InlineData("{ }")]
    [InlineData("{Org}")]
    [InlineData("{1abc}")]
    [InlineData("{a-b}")]
    [InlineData("{\"nested\": {\"k\": [1, 2]}}")]
    [InlineData("function() { return 1; }")]
    public void Resolve_JsonLikeBraces_LeftAlone(string text)
    {
        _resolver.Resolve(text, "config.body").ShouldBe(text);
    }

    [Fact]
    public void Resolve_JsonAroundPlaceholder_ReplacesOnlyThePlaceholder()
    {
        _resolver.Resolve("{\"org\": \"{org_slug}\"}", "config.body").ShouldBe("{\"org\": \"acme\"}");
    }

    [Fact]
    public void Resolve_UnknownPlaceholder_ThrowsNamingPlaceholderFieldAndFile()
    {
        var ex = Should.Throw<ConfigurationErrorException>(() => _resolver.Resolve("select * from {dataset}.{tabel}", "steps[0].config.query"));

        ex.File.ShouldBe(Source);
        ex.Field.ShouldBe("steps[0].config.query");
        ex.Problem.ShouldContain("'{tabel}'");
        ex.Problem.ShouldContain("{org_slug}");
        ex.Message.ShouldContain(Source);
    }

    [Fact]
    public void Resolve_ValueContainingPlaceholderSyntax_IsNotResolvedAgain()
    {
        var resolver = new PlaceholderResolver(new Dictionary<string, string> { ["a"] = "{b}" }, Source);

        resolver.Resolve("{a}", "f").ShouldBe("{b}");
    }

    [Fact]
    public void ResolveValue_NestedYamlStructures_ResolvesEverywhere()
    {
        // The shapes YamlDotNet produces for an untyped config: Dictionary<object, object> and List<object>.
        var config = new Dictionary<object, object?>
        {
            ["table"] = "{dataset}.events",
            ["count"] = 3,
            ["nothing"] = null,
            ["options"] = new Dictionary<object, object?>
            {
                ["path"] = "gs://{org_slug}/{env}",
                ["tags"] = new List<object?> { "{env}", "fixed", new Dictionary<object, object?> { ["k"] = "{run_id}" } },
            },
        };

        var resolved = _resolver.ResolveValue(config, "steps[0].config")
            .ShouldBeAssignableTo<IDictionary<string, object?>>().ShouldNotBeNull();

        resolved["table"].ShouldBe("acme_prod.events");
        resolved["count"].ShouldBe(3);
        resolved["nothing"].ShouldBeNull();
        var options = resolved["options"].ShouldBeAssignableTo<IDictionary<string, object?>>().ShouldNotBeNull();
        options["path"].ShouldBe("gs://acme/prod");
        var tags = options["tags"].ShouldBeAssignableTo<IList<object?>>().ShouldNotBeNull();
        tags[0].ShouldBe("prod");
        tags[1].ShouldBe("fixed");
        tags[2].ShouldBeAssignableTo<IDictionary<string, object?>>().ShouldNotBeNull()["k"].ShouldBe("r-123");
    }

    [Fact]
    public void ResolveValue_UnknownPlaceholderDeepInside_FieldNamesThePath()
    {
        var config = new Dictionary<object, object?>
        {
            ["options"] = new Dictionary<object, object?> { ["tags"] = new List<object?> { "ok", "{nope}" } },
        };

        var ex = Should.Throw<ConfigurationErrorException>(() => _resolver.ResolveValue(config, "steps[1].config"));

        ex.Field.ShouldBe("steps[1].config.options.tags[1]");
        ex.Problem.ShouldContain("{nope}");
    }

    [Fact]
    public void ResolveMap_StepConfigFromLoader_ResolvesAllValues()
    {
        var pipeline = PipelineLoader.Parse(
            "pipeline_id: p\nsteps:\n  - step_id: a\n    ps_type: x\n    config:\n      table: \"{dataset}.t\"\n      nested:\n        list: [\"{env}\", b]\n      json: '{\"k\": 1}'\n",
            Source,
            "demo/p");

        var resolved = _resolver.ResolveMap(pipeline.Steps[0].Config, "steps[0].config");

        resolved["table"].ShouldBe("acme_prod.t");
        resolved["json"].ShouldBe("{\"k\": 1}");
        var nested = resolved["nested"].ShouldBeAssignableTo<IDictionary<string, object?>>().ShouldNotBeNull();
        nested["list"].ShouldBeAssignableTo<IEnumerable<object?>>().ShouldNotBeNull().ShouldBe(["prod", "b"]);
    }

    [Fact]
    public void ResolveValue_StringKeyedDictionary_ResolvesPlaceholders()
    {
        var value = new Dictionary<string, object?> { ["k"] = "{org_slug}", ["n"] = 42L };

        var resolved = _resolver.ResolveValue(value, "f").ShouldBeAssignableTo<IDictionary<string, object?>>().ShouldNotBeNull();

        resolved["k"].ShouldBe("acme");
        resolved["n"].ShouldBe(42L);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(7)]
    [InlineData(true)]
    public void ResolveValue_NonStringScalar_ReturnedUnchanged(object? value)
    {
        _resolver.ResolveValue(value, "f").ShouldBe(value);
    }

    [Fact]
    public void ResolveValue_StringArray_ResolvesEachItem()
    {
        var resolved = _resolver.ResolveValue(new[] { "{env}", "{org_slug}" }, "f");

        resolved.ShouldBeAssignableTo<IEnumerable<object?>>().ShouldNotBeNull().ShouldBe(["prod", "acme"]);
    }

    [Fact]
    public void Resolve_RandomTemplatesOfKnownPlaceholders_EqualsManualConcatenation()
    {
        var names = Values.Keys.ToArray();
        var safeChar = Gen.Elements("abcXYZ019 _-.:/\"'$%()[]<>\n\té✓".ToCharArray());
        var safeString = Gens.StringOf(safeChar, 0, 12);

        // A segment is either a placeholder name (Item1 true) or literal text without braces.
        var segment = Gen.OneOf(
            Gen.Elements(names).Select(n => (IsPlaceholder: true, Text: n)),
            safeString.Select(s => (IsPlaceholder: false, Text: s)));

        var gen =
            from values in Gen.ArrayOf(safeString, names.Length)
            from segments in Gen.ListOf(segment)
            select (Values: names.Zip(values).ToDictionary(p => p.First, p => p.Second), Segments: segments);

        Prop.ForAll(Arb.From(gen), input =>
            {
                var resolver = new PlaceholderResolver(input.Values, Source);
                var template = string.Concat(input.Segments.Select(s => s.IsPlaceholder ? "{" + s.Text + "}" : s.Text));
                var expected = new StringBuilder();
                foreach (var s in input.Segments)
                {
                    expected.Append(s.IsPlaceholder ? input.Values[s.Text] : s.Text);
                }

                var result = resolver.Resolve(template, "f");

                return result == expected.ToString()
                    && names.All(n => !result.Contains("{" + n + "}", StringComparison.Ordinal));
            })
            .Check(PropertyConfig.Default);
    }
}
