using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Pipelines;

/// <summary>The pipelines shipped under <c>configs/</c> load with the strict loader against the real processors and tables.</summary>
public sealed class ShippedConfigsTests
{
    /// <summary>The ps_types the Convergence.Processors assembly registers.</summary>
    private static readonly string[] RealPsTypes =
    [
        "setup.initial.onetime_bootstrap",
        "setup.organizations.dryrun",
        "setup.organizations.onboarding",
        "gcp.bq_etl",
        "flow.noop",
        "integrations.validate_openai",
        "integrations.validate_claude",
        "integrations.validate_deepseek",
        "integrations.validate_gcp",
        "integrations.kms_store",
        "integrations.kms_decrypt",
        "integrations.seed_tables",
        "openai.cost",
        "anthropic.cost",
        "deepseek.cost",
        "focus.normalize",
        "deepseek.balance",
        "costs.reconcile",
        "openai.subscriptions",
        "openai.usage",
        "openai.costs",
        "anthropic.usage",
        "anthropic.costs",
    ];

    private static readonly Lazy<PipelineLoadContext> LazyContext = new(() => new PipelineLoadContext(
        new HashSet<string>(RealPsTypes, StringComparer.Ordinal),
        new TableSchemaCatalog(RepoPaths.Configs).Tables));

    private static PipelineLoadContext Context => LazyContext.Value;

    public static TheoryData<string> ShippedPipelines()
    {
        var data = new TheoryData<string>();
        foreach (var file in ShippedFiles())
        {
            data.Add(file);
        }

        return data;
    }

    /// <summary>Every <c>*.yml</c> under <c>configs/</c>, relative to it with '/' separators.</summary>
    private static List<string> ShippedFiles() =>
        [.. Directory.EnumerateFiles(RepoPaths.Configs, "*.yml", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(RepoPaths.Configs, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(ShippedPipelines))]
    public void LoadFile_ShippedPipeline_LoadsStrictly(string relativeFile)
    {
        var file = Path.Combine(RepoPaths.Configs, relativeFile);
        var path = relativeFile[..^".yml".Length];

        var pipeline = PipelineLoader.LoadFile(file, path, Context);

        PipelineCatalog.IsSafePath(path).ShouldBeTrue();
        pipeline.Path.ShouldBe(path);
        pipeline.Steps.ShouldNotBeEmpty();
        pipeline.Steps.ShouldAllBe(s => RealPsTypes.Contains(s.PsType));
        StepOrder.Resolve(pipeline).Count.ShouldBe(pipeline.Steps.Count);
    }

    [Fact]
    public void ShippedPipelines_IncludeTheKnownOnes()
    {
        ShippedFiles().ShouldBe(
            ["anthropic/usage_cost.yml", "deepseek/usage_cost.yml", "gcp/billing.yml", "gcp/billing_bigquery.yml", "gcp/example/dryrun.yml", "integrations/anthropic/setup.yml", "integrations/anthropic/validate.yml", "integrations/deepseek/setup.yml", "integrations/deepseek/validate.yml", "integrations/gcp/setup.yml", "integrations/gcp/validate.yml", "integrations/openai/setup.yml", "integrations/openai/validate.yml", "openai/subscriptions.yml", "openai/usage_cost.yml", "setup/bootstrap/pipeline.yml", "setup/organizations/dryrun.yml", "setup/organizations/onboarding.yml", "usage/events_cost.yml"],
            ignoreOrder: true);
    }

    [Fact]
    public void Catalog_StrictContext_ValidateAllFindsNoErrors()
    {
        var catalog = new PipelineCatalog(RepoPaths.Configs, Context);

        catalog.ValidateAll().Select(e => e.Message).ShouldBeEmpty();
        catalog.ListPaths().ShouldBe(["anthropic/usage_cost", "deepseek/usage_cost", "gcp/billing", "gcp/billing_bigquery", "gcp/example/dryrun", "integrations/anthropic/setup", "integrations/anthropic/validate", "integrations/deepseek/setup", "integrations/deepseek/validate", "integrations/gcp/setup", "integrations/gcp/validate", "integrations/openai/setup", "integrations/openai/validate", "openai/subscriptions", "openai/usage_cost", "setup/bootstrap/pipeline", "setup/organizations/dryrun", "setup/organizations/onboarding", "usage/events_cost"]);
    }

    [Fact]
    public void Catalog_StrictContext_EveryListedPathLoads()
    {
        var catalog = new PipelineCatalog(RepoPaths.Configs, Context);

        foreach (var path in catalog.ListPaths())
        {
            catalog.Get(path).Path.ShouldBe(path);
        }
    }

    [Fact]
    public void GcpBilling_LoadsAsDocumented()
    {
        var pipeline = PipelineLoader.LoadFile(Path.Combine(RepoPaths.Configs, "gcp", "billing.yml"), "gcp/billing", Context);

        pipeline.PipelineId.ShouldBe("{org_slug}-gcp-billing");
        pipeline.Parameters.ShouldBe(["source_uri"]);
        pipeline.Steps.Select(s => s.PsType).ShouldBe(["gcp.bq_etl", "focus.normalize"]);
        var step = pipeline.Steps[0];
        step.Config["source"].ShouldBe("file");
        var destination = step.Destination.ShouldNotBeNull();
        destination.Table.ShouldBe("gcp_billing_daily_raw");
        destination.WriteMode.ShouldBe(WriteMode.ReplacePartitions);
        destination.Keys.ShouldBe(["billing_account_id", "usage_date"]);
    }

    [Fact]
    public void GcpBillingBigQuery_LoadsAsDocumented()
    {
        var pipeline = PipelineLoader.LoadFile(Path.Combine(RepoPaths.Configs, "gcp", "billing_bigquery.yml"), "gcp/billing_bigquery", Context);

        pipeline.PipelineId.ShouldBe("{org_slug}-gcp-billing-bigquery");
        pipeline.Parameters.ShouldBe(["table"]);
        pipeline.Steps.Select(s => s.PsType).ShouldBe(["integrations.kms_decrypt", "gcp.bq_etl", "focus.normalize"]);
        var step = pipeline.Steps[1];
        (step.Config["source"], step.Config["format"], step.Config["credential_step"]).ShouldBe(("bigquery", "gcp_billing_export", "decrypt_credential"));
        ((string)step.Config["query_bigquery"]!).ShouldContain("FROM `{table}`");
        var destination = step.Destination.ShouldNotBeNull();
        destination.Table.ShouldBe("gcp_billing_daily_raw");
        destination.WriteMode.ShouldBe(WriteMode.ReplacePartitions);
        destination.Keys.ShouldBe(["billing_account_id", "usage_date"]);
    }

    [Fact]
    public void ExampleDryrun_LoadsAsDocumented()
    {
        var pipeline = PipelineLoader.LoadFile(Path.Combine(RepoPaths.Configs, "gcp", "example", "dryrun.yml"), "gcp/example/dryrun", Context);

        pipeline.PipelineId.ShouldBe("{org_slug}-gcp-example-dryrun");
        pipeline.MaxDateRangeDays.ShouldBe(31);
        var step = pipeline.Steps.ShouldHaveSingleItem();
        step.StepId.ShouldBe("write_validation_rows");
        step.PsType.ShouldBe("gcp.bq_etl");
        step.TimeoutSeconds.ShouldBe(60);
        step.Retry.ShouldBe(new RetryPolicy(3, 1, 16));
        step.Destination.ShouldBe(new DestinationDefinition(DestinationDefinition.OrgDataset, "onboarding_validation_test", WriteMode.MergePartition, [], "run_date"), new DestinationComparer());
        step.Config.Keys.ShouldBe(["source", "query_sqlite", "query_postgres"], ignoreOrder: true);
        step.DqChecks.Select(c => (c.Name, c.Kind, c.Severity)).ShouldBe(
        [
            ("not_null_run_date", DqCheckKind.NotNull, DqSeverity.Error),
            ("unique_run_date", DqCheckKind.Unique, DqSeverity.Error),
            ("accepted_values_org_slug", DqCheckKind.AcceptedValues, DqSeverity.Error),
            ("row_count_min", DqCheckKind.RowCountMin, DqSeverity.Error),
            ("created_after_run_date", DqCheckKind.Expression, DqSeverity.Warn),
        ]);
        step.DqChecks[2].Values.ShouldBe(["{org_slug}"]);
        step.DqChecks[3].Value.ShouldBe(1);
    }

    [Fact]
    public void Onboarding_OrgTables_AreSchemaFilesInsideConfigs()
    {
        var catalog = new PipelineCatalog(RepoPaths.Configs, Context);
        var step = catalog.Get("setup/organizations/onboarding").Steps.ShouldHaveSingleItem();

        var tables = step.Config["org_tables"].ShouldBeAssignableTo<IEnumerable<object?>>().ShouldNotBeNull().Cast<string>().ToList();

        tables.ShouldNotBeEmpty();
        foreach (var relative in tables)
        {
            var file = catalog.ResolveFile(relative);
            File.Exists(file).ShouldBeTrue(file);
            Context.FindTable(TableSchema.Load(file).Name).ShouldNotBeNull(relative);
        }
    }

    [Fact]
    public void Bootstrap_SchemasFolder_ExistsInsideConfigs()
    {
        var catalog = new PipelineCatalog(RepoPaths.Configs, Context);
        var step = catalog.Get("setup/bootstrap/pipeline").Steps.ShouldHaveSingleItem();

        var folder = catalog.ResolveFile((string)step.Config["schemas"]!);

        TableSchema.LoadDirectory(folder).ShouldNotBeEmpty();
    }

    [Theory]
    [InlineData("setup/bootstrap/pipeline")]
    [InlineData("setup/organizations/onboarding")]
    [InlineData("setup/organizations/dryrun")]
    [InlineData("setup")]
    [InlineData("integrations/gcp/credentials")]
    [InlineData("integrations")]
    [InlineData("notify_systems/email/send")]
    [InlineData("notify_systems")]
    [InlineData("../setup/bootstrap/pipeline")]
    [InlineData("gcp/../setup/bootstrap/pipeline")]
    [InlineData("gcp/example/../../setup/bootstrap/pipeline")]
    [InlineData("./gcp/example/dryrun")]
    [InlineData("/gcp/example/dryrun")]
    [InlineData("gcp/example/dryrun.yml")]
    [InlineData("gcp\\example\\dryrun")]
    [InlineData("Setup/bootstrap/pipeline")]
    [InlineData("GCP/example/dryrun")]
    [InlineData("gcp//example/dryrun")]
    [InlineData("")]
    [InlineData("%2e%2e/setup/bootstrap/pipeline")]
    public void IsOrgRunnable_PlatformOrUnsafePath_ReturnsFalse(string path)
    {
        PipelineCatalog.IsOrgRunnable(path).ShouldBeFalse();
    }

    [Theory]
    [InlineData("gcp/example/dryrun")]
    [InlineData("setup_extra/x")]
    [InlineData("gcp/setup/x")]
    [InlineData("gcp/integrations")]
    public void IsOrgRunnable_OrgPipelinePath_ReturnsTrue(string path)
    {
        PipelineCatalog.IsOrgRunnable(path).ShouldBeTrue();
    }

    [Fact]
    public void IsOrgRunnable_EveryShippedPath_OnlyOutsidePlatformFolders()
    {
        var catalog = new PipelineCatalog(RepoPaths.Configs, Context);

        var runnable = catalog.ListPaths().Where(PipelineCatalog.IsOrgRunnable).ToList();

        runnable.ShouldBe(["anthropic/usage_cost", "deepseek/usage_cost", "gcp/billing", "gcp/billing_bigquery", "gcp/example/dryrun", "openai/subscriptions", "openai/usage_cost", "usage/events_cost"]);
    }

    private sealed class DestinationComparer : IEqualityComparer<DestinationDefinition?>
    {
        public bool Equals(DestinationDefinition? x, DestinationDefinition? y) =>
            x is not null && y is not null
            && x.DatasetType == y.DatasetType && x.Table == y.Table && x.WriteMode == y.WriteMode
            && x.Keys.SequenceEqual(y.Keys) && x.PartitionColumn == y.PartitionColumn;

        public int GetHashCode(DestinationDefinition? obj) => obj?.Table.GetHashCode(StringComparison.Ordinal) ?? 0;
    }
}
