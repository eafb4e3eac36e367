using System.Text.RegularExpressions;
using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Pipelines;

/// <summary>
/// A corpus of small broken pipeline files (<c>BrokenConfigs/*.yml</c>). The first line of each states what a user
/// should be told: <c># expect: line=&lt;N&gt; field=&lt;field path or -&gt; message=&lt;substring of the problem&gt;</c>.
/// The line is the line of the offending key or value (or of the mapping that lacks a required field).
/// </summary>
/// <remarks>
/// Files on which the loader reports a poor location are listed in <see cref="KnownBugs"/>: the theory leaves them
/// out and each has a skipped fact below that fails for the reason given until the loader is fixed.
/// </remarks>
public sealed partial class BrokenConfigCorpusTests
{
    private const string CorpusFolder = "BrokenConfigs";


    /// <summary>Corpus files the loader currently reports at a poor location, with the reason.</summary>
    private static readonly Dictionary<string, string> KnownBugs = new(StringComparer.Ordinal)
    {
    };

    private static readonly Lazy<PipelineLoadContext> LazyContext = new(() => new PipelineLoadContext(
        new HashSet<string>(StringComparer.Ordinal) { "gcp.bq_etl", "flow.noop", "setup.initial.onetime_bootstrap" },
        new TableSchemaCatalog(RepoPaths.Configs).Tables));

    private static string OutputCorpus => Path.Combine(AppContext.BaseDirectory, "Pipelines", CorpusFolder);

    private static string SourceCorpus => Path.Combine(RepoPaths.Root, "tests", "Convergence.Core.Tests", "Pipelines", CorpusFolder);

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var name in CorpusFileNames(OutputCorpus).Where(n => !KnownBugs.ContainsKey(n)))
        {
            data.Add(name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LoadFile_BrokenConfig_ReportsExpectedLineFieldAndProblem(string name)
    {
        AssertReportedAsExpected(name);
    }

    [Fact]
    public void Corpus_HasAtLeastThirtyFilesEachWithAnExpectHeader()
    {
        var names = CorpusFileNames(OutputCorpus);

        names.Count.ShouldBeGreaterThanOrEqualTo(30);
        foreach (var name in names)
        {
            var expectation = ReadExpectation(Path.Combine(OutputCorpus, name));
            expectation.Line.ShouldBeGreaterThan(1, $"{name}: line 1 is the header; the problem is below it");
            expectation.Message.ShouldNotBeNullOrWhiteSpace(name);
        }
    }

    [Fact]
    public void Corpus_EverySourceFileIsCopiedToTheOutput()
    {
        CorpusFileNames(OutputCorpus).ShouldBe(CorpusFileNames(SourceCorpus));
    }

    [Fact]
    public void KnownBugs_EachNamesACorpusFile()
    {
        var names = CorpusFileNames(OutputCorpus);

        foreach (var bug in KnownBugs.Keys)
        {
            names.ShouldContain(bug);
        }
    }

    [Fact]
    public void Corpus_EveryFileFailsToLoad()
    {
        // Also covers the known-bug files: they are rejected, only at a poor location.
        foreach (var name in CorpusFileNames(OutputCorpus))
        {
            var file = Path.Combine(OutputCorpus, name);
            var ex = Should.Throw<ConfigurationErrorException>(() => PipelineLoader.LoadFile(file, "corpus/x", LazyContext.Value), name);
            ex.File.ShouldBe(file, name);
            ex.Problem.ShouldContain(ReadExpectation(file).Message, Case.Sensitive, name);
        }
    }

    [Fact]
    public void LoadFile_NestedPipelineBlock_ReportsThePipelineKeyLine() => AssertReportedAsExpected("nested_pipeline_block.yml");

    [Fact]
    public void LoadFile_DuplicateStepIdNotFirstKey_ReportsTheStepIdLine() => AssertReportedAsExpected("duplicate_step_id_not_first_key.yml");

    [Fact]
    public void LoadFile_DependsOnUnknownStep_ReportsTheDependsOnLine() => AssertReportedAsExpected("depends_on_unknown_step.yml");

    [Fact]
    public void LoadFile_SelfDependency_ReportsTheDependsOnLine() => AssertReportedAsExpected("self_dependency.yml");

    [Fact]
    public void LoadFile_ThreeStepCycle_ReportsALineAndTheStep() => AssertReportedAsExpected("three_step_cycle.yml");

    [Fact]
    public void LoadFile_MaxBackoffBelowBackoff_ReportsTheMaxBackoffLine() => AssertReportedAsExpected("retry_max_backoff_below_backoff.yml");

    [Fact]
    public void LoadFile_UpsertKeyNotAColumn_ReportsTheKeysLine() => AssertReportedAsExpected("upsert_key_not_a_column.yml");

    [Fact]
    public void LoadFile_PartitionColumnNotAColumn_ReportsThePartitionColumnField() => AssertReportedAsExpected("partition_column_not_a_column.yml");

    [Fact]
    public void LoadFile_DqColumnNotInTable_ReportsTheColumnLine() => AssertReportedAsExpected("dq_column_not_in_table.yml");

    [Fact]
    public void LoadFile_DqColumnsEntryNotInTable_ReportsTheColumnsField() => AssertReportedAsExpected("dq_columns_not_in_table.yml");

    [Fact]
    public void LoadFile_UnresolvablePlaceholderInVariable_ReportsThatVariablesLine() => AssertReportedAsExpected("placeholder_unknown_in_variables.yml");

    [Fact]
    public void LoadFile_ParameterNotSnakeCase_ReportsTheEntryLine() => AssertReportedAsExpected("parameter_not_snake_case.yml");

    [Fact]
    public void LoadFile_TabIndentation_ReportsTheTabLine() => AssertReportedAsExpected("invalid_yaml_tab_indent.yml");

    private static void AssertReportedAsExpected(string name)
    {
        var file = Path.Combine(OutputCorpus, name);
        var expected = ReadExpectation(file);

        var ex = Should.Throw<ConfigurationErrorException>(() => PipelineLoader.LoadFile(file, "corpus/x", LazyContext.Value));

        var actual = $"line={ex.Line?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"} field={ex.Field ?? "-"} problem={ex.Problem}";
        ex.File.ShouldBe(file);
        ex.Line.ShouldBe(expected.Line, actual);
        ex.Field.ShouldBe(expected.Field, actual);
        ex.Problem.ShouldContain(expected.Message, Case.Sensitive, actual);
        ex.Message.ShouldStartWith($"{file}:{expected.Line}");
        ex.Message.ShouldContain(expected.Message);
    }

    private static List<string> CorpusFileNames(string folder) =>
        [.. Directory.EnumerateFiles(folder, "*.yml").Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal)];

    private static (long Line, string? Field, string Message) ReadExpectation(string file)
    {
        var header = File.ReadLines(file).First();
        var match = ExpectHeader().Match(header);
        match.Success.ShouldBeTrue($"{file}: the first line must be '# expect: line=<N> field=<field|-> message=<substring>', found '{header}'");
        var field = match.Groups["field"].Value;
        return (long.Parse(match.Groups["line"].Value, System.Globalization.CultureInfo.InvariantCulture), field == "-" ? null : field, match.Groups["message"].Value);
    }

    [GeneratedRegex(@"^# expect: line=(?<line>\d+) field=(?<field>\S+) message=(?<message>.+)$")]
    private static partial Regex ExpectHeader();
}
