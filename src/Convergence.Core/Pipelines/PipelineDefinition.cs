namespace Convergence.Core.Pipelines;

/// <summary>A pipeline loaded from <c>configs/</c>: immutable, validated, placeholders not yet resolved.</summary>
/// <param name="Path">The config path relative to <c>configs/</c> without extension, such as <c>setup/bootstrap/pipeline</c>.</param>
/// <param name="SourceFile">The file it was loaded from, for error messages.</param>
/// <param name="Schedule">The default 5-field cron schedule, if the pipeline has one.</param>
/// <param name="MaxDateRangeDays">The longest <c>start_date..end_date</c> a run may ask for.</param>
/// <param name="Parameters">Run parameters the pipeline takes besides its date slice (<c>parameters:</c>).</param>
public sealed record PipelineDefinition(
    string Path,
    string SourceFile,
    string PipelineId,
    string? Description,
    string? Schedule,
    IReadOnlyDictionary<string, string> Variables,
    IReadOnlyList<StepDefinition> Steps,
    NotificationSettings Notifications,
    int MaxDateRangeDays,
    IReadOnlySet<string> Parameters)
{
    public const int DefaultMaxDateRangeDays = 93;

    public StepDefinition? FindStep(string stepId) => Steps.FirstOrDefault(s => s.StepId == stepId);
}

/// <summary>One step of a pipeline.</summary>
/// <param name="Line">The line of the step in its file, for error messages.</param>
public sealed record StepDefinition(
    string StepId,
    string PsType,
    string? Description,
    IReadOnlyList<string> DependsOn,
    IReadOnlyDictionary<string, object?> Config,
    int? TimeoutSeconds,
    RetryPolicy Retry,
    DestinationDefinition? Destination,
    IReadOnlyList<DqCheckDefinition> DqChecks,
    int Line);

/// <summary>Where a step writes, and how.</summary>
/// <param name="DatasetType"><c>org_dataset</c> (the run's org) or <c>central</c>.</param>
/// <param name="Keys">Columns identifying a row, for <see cref="WriteMode.Upsert"/>, or a partition, for <see cref="WriteMode.ReplacePartitions"/>.</param>
/// <param name="PartitionColumn">The date column whose run slice <see cref="WriteMode.MergePartition"/> replaces.</param>
public sealed record DestinationDefinition(string DatasetType, string Table, WriteMode WriteMode, IReadOnlyList<string> Keys, string? PartitionColumn)
{
    public const string OrgDataset = "org_dataset";
    public const string CentralDataset = "central";
}

/// <summary>How a step's rows replace what the destination holds. Each mode is atomic.</summary>
public enum WriteMode
{
    /// <summary>Add rows.</summary>
    Append,

    /// <summary>Replace the whole table.</summary>
    Truncate,

    /// <summary>Replace exactly the rows of the run's date slice (<c>start_date..end_date</c> on the partition column).</summary>
    MergePartition,

    /// <summary>Insert or replace rows by the declared keys.</summary>
    Upsert,

    /// <summary>
    /// Replace every partition the write touches: each distinct value of the declared keys (such as billing account and
    /// usage day) among the written rows first loses all its earlier rows; partitions the write does not mention stay.
    /// </summary>
    ReplacePartitions,
}

/// <summary>The names write modes have in pipeline configs.</summary>
public static class WriteModeNames
{
    public static string ToConfigName(this WriteMode mode) => mode switch
    {
        WriteMode.Append => "append",
        WriteMode.Truncate => "truncate",
        WriteMode.MergePartition => "merge_partition",
        WriteMode.Upsert => "upsert",
        WriteMode.ReplacePartitions => "replace_partitions",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };
}

/// <summary>Retries of transient failures: exponential backoff with jitter, capped.</summary>
public sealed record RetryPolicy(int MaxAttempts, double BackoffSeconds, double MaxBackoffSeconds)
{
    public static readonly RetryPolicy None = new(1, 0, 0);
}

/// <summary>A data-quality check run on a step's destination after it writes, before it commits.</summary>
public sealed record DqCheckDefinition(
    string Name,
    DqCheckKind Kind,
    string? Column,
    IReadOnlyList<string> Columns,
    IReadOnlyList<string> Values,
    long? Value,
    string? Expression,
    DqSeverity Severity);

public enum DqCheckKind
{
    NotNull,
    Unique,
    AcceptedValues,
    RowCountMin,
    RowCountMax,
    Expression,
}

public enum DqSeverity
{
    Warn,
    Error,
}

/// <summary>Notification channels by outcome.</summary>
public sealed record NotificationSettings(IReadOnlyList<string> OnFailure, IReadOnlyList<string> OnSuccess, IReadOnlyList<string> Always)
{
    public static readonly NotificationSettings None = new([], [], []);
}
