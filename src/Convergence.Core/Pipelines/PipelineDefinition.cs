namespace Convergence.Core.Pipelines;

/// <summary>A pipeline loaded from <c>configs/</c>: immutable, validated, placeholders not yet resolved.</summary>
/// <param name="Path">The config path relative to <c>configs/</c> without extension, such as <c>setup/bootstrap/pipeline</c>.</param>
/// <param name="SourceFile">The file it was loaded from, for error messages.</param>
public sealed record PipelineDefinition(
    string Path,
    string SourceFile,
    string PipelineId,
    string? Description,
    string? Schedule,
    IReadOnlyDictionary<string, string> Variables,
    IReadOnlyList<StepDefinition> Steps);

/// <summary>One step of a pipeline.</summary>
public sealed record StepDefinition(
    string StepId,
    string PsType,
    string? Description,
    IReadOnlyList<string> DependsOn,
    IReadOnlyDictionary<string, object?> Config,
    int? TimeoutSeconds);
