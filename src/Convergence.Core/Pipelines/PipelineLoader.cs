using Convergence.Core.Configuration;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Parses pipeline YAML strictly: unknown fields, missing required fields, duplicate step ids, unknown
/// dependencies and cycles are errors naming the file, line and field.
/// </summary>
public static class PipelineLoader
{
    private static readonly IDeserializer Deserializer = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .WithDuplicateKeyChecking()
        .Build();

    public static PipelineDefinition LoadFile(string file, string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (IOException ex)
        {
            throw new ConfigurationErrorException(file, null, null, $"cannot read the file: {ex.Message}");
        }

        return Parse(text, file, path);
    }

    public static PipelineDefinition Parse(string yaml, string sourceFile, string path)
    {
        PipelineFile? file;
        try
        {
            file = Deserializer.Deserialize<PipelineFile>(yaml);
        }
        catch (YamlException ex)
        {
            var message = ex.InnerException?.Message ?? ex.Message;
            throw new ConfigurationErrorException(sourceFile, ex.Start.Line, null, message);
        }

        if (file is null)
        {
            throw new ConfigurationErrorException(sourceFile, 1, null, "the file is empty; expected a pipeline with pipeline_id and steps");
        }

        if (string.IsNullOrWhiteSpace(file.PipelineId))
        {
            throw new ConfigurationErrorException(sourceFile, 1, "pipeline_id", "pipeline_id is required at the root of the file");
        }

        if (file.Steps is null || file.Steps.Count == 0)
        {
            throw new ConfigurationErrorException(sourceFile, 1, "steps", "a pipeline needs at least one step");
        }

        var steps = new List<StepDefinition>();
        for (var i = 0; i < file.Steps.Count; i++)
        {
            var s = file.Steps[i];
            var where = $"steps[{i}]";
            if (s is null)
            {
                throw new ConfigurationErrorException(sourceFile, null, where, "a step must be a mapping with step_id and ps_type");
            }

            if (string.IsNullOrWhiteSpace(s.StepId))
            {
                throw new ConfigurationErrorException(sourceFile, null, $"{where}.step_id", "step_id is required");
            }

            if (!Storage.SqlIdentifier.IsValid(s.StepId))
            {
                throw new ConfigurationErrorException(sourceFile, null, $"{where}.step_id", $"'{s.StepId}' must be snake_case ({Storage.SqlIdentifier.Pattern})");
            }

            if (steps.Any(x => x.StepId == s.StepId))
            {
                throw new ConfigurationErrorException(sourceFile, null, $"{where}.step_id", $"step_id '{s.StepId}' is used twice");
            }

            if (string.IsNullOrWhiteSpace(s.PsType))
            {
                throw new ConfigurationErrorException(sourceFile, null, $"{where}.ps_type", "ps_type is required");
            }

            if (s.TimeoutSeconds is <= 0)
            {
                throw new ConfigurationErrorException(sourceFile, null, $"{where}.timeout_seconds", "timeout_seconds must be positive");
            }

            steps.Add(new StepDefinition(s.StepId, s.PsType, s.Description, s.DependsOn ?? [], s.Config ?? new Dictionary<string, object?>(), s.TimeoutSeconds));
        }

        foreach (var step in steps)
        {
            foreach (var dependency in step.DependsOn)
            {
                if (steps.All(s => s.StepId != dependency))
                {
                    throw new ConfigurationErrorException(sourceFile, null, $"steps[{steps.IndexOf(step)}].depends_on", $"'{dependency}' is not a step of this pipeline");
                }
            }
        }

        var definition = new PipelineDefinition(path, sourceFile, file.PipelineId, file.Description, file.Schedule, file.Variables ?? new Dictionary<string, string>(), steps);
        _ = StepOrder.Resolve(definition);
        return definition;
    }

    private sealed class PipelineFile
    {
        public string? PipelineId { get; set; }

        public string? Description { get; set; }

        public string? Schedule { get; set; }

        public Dictionary<string, string>? Variables { get; set; }

        public List<StepFile>? Steps { get; set; }
    }

    private sealed class StepFile
    {
        public string? StepId { get; set; }

        public string? PsType { get; set; }

        public string? Description { get; set; }

        public List<string>? DependsOn { get; set; }

        public Dictionary<string, object?>? Config { get; set; }

        public int? TimeoutSeconds { get; set; }
    }
}
