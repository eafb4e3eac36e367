using System.Collections;
using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Tests.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Convergence.Core.Tests.Pipelines;

/// <summary>
/// Properties of <see cref="PlaceholderResolver.ResolveValue"/> over nested config trees: maps (string- or
/// object-keyed, as the loader and YamlDotNet build them), lists and arrays, strings and other scalars.
/// </summary>
public sealed class PlaceholderResolverPropertyTests
{
    private const string Source = "configs/demo/pipeline.yml";
    private const string Root = "steps[0].config";

    private static readonly string[] Names = ["org_slug", "env", "dataset", "run_id", "date", "start_date", "end_date", "x"];

    private static readonly object?[] Scalars = [null, 7, 42L, true, false, 2.5, new DateOnly(2025, 11, 20)];

    /// <summary>Text without braces: values and literal template text never form a placeholder of their own.</summary>
    private static readonly Gen<string> PlainText = Gens.StringOf(Gen.Elements("abcXYZ019 _-.:/\"'$%()[]<>\n\té✓;".ToCharArray()), 0, 10);

    /// <summary>Literal text between placeholders, including braces that never form a known placeholder.</summary>
    private static readonly Gen<string> LiteralText = Gen.Frequency(
        (4, PlainText),
        (1, Gen.Elements("{", "}", "{}", "{ env }", "{Env}", "{\"k\": 1}", "{1x}", "{a-b}")));

    private static readonly Gen<string> Key = Gens.StringOf(Gens.SlugChar, 1, 6);

    private static readonly Gen<Segment> SegmentGen = Gen.OneOf(
        Gen.Elements(Names).Select(n => new Segment(true, n)),
        LiteralText.Select(t => new Segment(false, t)));

    private static Gen<Node> Leaf { get; } = Gen.Frequency(
        (3, Gen.Choose(0, 6).SelectMany(n => Gen.ArrayOf(SegmentGen, n)).Select(segments => (Node)new TextLeaf(segments))),
        (1, Gen.Elements(Scalars).Select(v => (Node)new ScalarLeaf(v))));

    private static Gen<Dictionary<string, string>> ValuesGen { get; } =
        Gen.ArrayOf(PlainText, Names.Length).Select(values => Names.Zip(values).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal));

    [Fact]
    public void Property_NestedTree_NoKnownPlaceholderSurvives()
    {
        var gen = Gen.Zip(ValuesGen, Tree(4));

        Prop.ForAll(Arb.From(gen), input =>
            {
                var (values, tree) = input;
                var resolved = new PlaceholderResolver(values, Source).ResolveValue(tree.ToInput(), Root);

                foreach (var text in Strings(resolved))
                {
                    foreach (var name in Names)
                    {
                        text.ShouldNotContain("{" + name + "}", Case.Sensitive);
                    }
                }
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_NestedTree_ResolvesToTheSameShapeWithEachStringExpanded()
    {
        var gen = Gen.Zip(ValuesGen, Tree(4));

        Prop.ForAll(Arb.From(gen), input =>
            {
                var (values, tree) = input;
                var resolved = new PlaceholderResolver(values, Source).ResolveValue(tree.ToInput(), Root);

                AssertEquivalent(resolved, tree.Expected(values), Root);
            })
            .Check(PropertyConfig.Default);
    }

    [Fact]
    public void Property_UnknownPlaceholderAnywhere_FieldIsItsPath()
    {
        var gen =
            from values in ValuesGen
            from spine in Gen.Choose(0, 5).SelectMany(n => Gen.ArrayOf(SpineStep, n))
            select (values, spine);

        Prop.ForAll(Arb.From(gen), input =>
            {
                var (values, spine) = input;
                Node node = new TextLeaf([new Segment(true, "env"), new Segment(false, " and "), new Segment(true, "nope")]);
                for (var i = spine.Length - 1; i >= 0; i--)
                {
                    node = spine[i].Wrap(node);
                }

                var expectedField = Root + string.Concat(spine.Select(s => s.PathPart));

                var ex = Should.Throw<ConfigurationErrorException>(() => new PlaceholderResolver(values, Source).ResolveValue(node.ToInput(), Root));

                ex.Field.ShouldBe(expectedField);
                ex.File.ShouldBe(Source);
                ex.Problem.ShouldContain("'{nope}'");
            })
            .Check(PropertyConfig.Default);
    }

    /// <summary>One level above the bad leaf: a map holding it under a key, or a list holding it at an index.</summary>
    private static Gen<Step> SpineStep { get; } = Gen.OneOf(
        from key in Key
        from siblings in Gen.Choose(0, 3).SelectMany(n => Gen.ArrayOf(Gen.Zip(Key, Tree(1)), n))
        from objectKeys in Gen.Elements(true, false)
        select (Step)new MapStep(key, [.. siblings.Where(s => s.Item1 != key).DistinctBy(s => s.Item1)], objectKeys),
        from before in Gen.Choose(0, 3).SelectMany(n => Gen.ArrayOf(Tree(1), n))
        from after in Gen.Choose(0, 3).SelectMany(n => Gen.ArrayOf(Tree(1), n))
        from asArray in Gen.Elements(true, false)
        select (Step)new ListStep(before, after, asArray));

    private static Gen<Node> Tree(int depth) => depth <= 0
        ? Leaf
        : Gen.Frequency((3, Leaf), (1, Map(depth - 1)), (1, List(depth - 1)));

    private static Gen<Node> Map(int depth) =>
        from entries in Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(Gen.Zip(Key, Tree(depth)), n))
        from objectKeys in Gen.Elements(true, false)
        select (Node)new MapNode([.. entries.DistinctBy(e => e.Item1)], objectKeys);

    private static Gen<Node> List(int depth) =>
        from items in Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(Tree(depth), n))
        from asArray in Gen.Elements(true, false)
        select (Node)new ListNode(items, asArray);

    private static IEnumerable<string> Strings(object? value) => value switch
    {
        string s => [s],
        IDictionary map => map.Values.Cast<object?>().SelectMany(Strings),
        IEnumerable list => list.Cast<object?>().SelectMany(Strings),
        _ => [],
    };

    private static void AssertEquivalent(object? actual, object? expected, string path)
    {
        switch (expected)
        {
            case Dictionary<string, object?> map:
                var actualMap = actual.ShouldBeAssignableTo<IDictionary<string, object?>>(path).ShouldNotBeNull(path);
                actualMap.Keys.ShouldBe(map.Keys, path);
                foreach (var (key, value) in map)
                {
                    AssertEquivalent(actualMap[key], value, $"{path}.{key}");
                }

                break;
            case List<object?> list:
                var actualList = actual.ShouldBeAssignableTo<IEnumerable<object?>>(path).ShouldNotBeNull(path).ToList();
                actualList.Count.ShouldBe(list.Count, path);
                for (var i = 0; i < list.Count; i++)
                {
                    AssertEquivalent(actualList[i], list[i], $"{path}[{i}]");
                }

                break;
            default:
                actual.ShouldBe(expected, path);
                break;
        }
    }

    private sealed record Segment(bool IsPlaceholder, string Text);

    private abstract record Node
    {
        public abstract object? ToInput();

        public abstract object? Expected(IReadOnlyDictionary<string, string> values);
    }

    private sealed record TextLeaf(Segment[] Segments) : Node
    {
        public override object? ToInput() => string.Concat(Segments.Select(s => s.IsPlaceholder ? "{" + s.Text + "}" : s.Text));

        public override object? Expected(IReadOnlyDictionary<string, string> values) =>
            string.Concat(Segments.Select(s => s.IsPlaceholder ? values[s.Text] : s.Text));
    }

    private sealed record ScalarLeaf(object? Value) : Node
    {
        public override object? ToInput() => Value;

        public override object? Expected(IReadOnlyDictionary<string, string> values) => Value;
    }

    /// <summary>A map; <paramref name="ObjectKeys"/> builds it as YamlDotNet does (object keys), else as the loader does.</summary>
    private sealed record MapNode((string Key, Node Value)[] Entries, bool ObjectKeys) : Node
    {
        public override object? ToInput() => ObjectKeys
            ? Entries.ToDictionary(e => (object)e.Key, e => e.Value.ToInput())
            : Entries.ToDictionary(e => e.Key, e => e.Value.ToInput(), StringComparer.Ordinal);

        public override object? Expected(IReadOnlyDictionary<string, string> values) =>
            Entries.ToDictionary(e => e.Key, e => e.Value.Expected(values), StringComparer.Ordinal);
    }

    private sealed record ListNode(Node[] Items, bool AsArray) : Node
    {
        public override object? ToInput() => AsArray
            ? Items.Select(i => i.ToInput()).ToArray()
            : Items.Select(i => i.ToInput()).ToList();

        public override object? Expected(IReadOnlyDictionary<string, string> values) => Items.Select(i => i.Expected(values)).ToList();
    }

    private abstract record Step
    {
        public abstract string PathPart { get; }

        public abstract Node Wrap(Node child);
    }

    private sealed record MapStep(string Key, (string Key, Node Value)[] Siblings, bool ObjectKeys) : Step
    {
        public override string PathPart => "." + Key;

        public override Node Wrap(Node child) => new MapNode([.. Siblings, (Key, child)], ObjectKeys);
    }

    private sealed record ListStep(Node[] Before, Node[] After, bool AsArray) : Step
    {
        public override string PathPart => $"[{Before.Length}]";

        public override Node Wrap(Node child) => new ListNode([.. Before, child, .. After], AsArray);
    }
}
