using System.Text.RegularExpressions;
using Convergence.Core.Configuration;
using Convergence.Core.Storage;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Parses pipeline YAML strictly: unknown or misnamed fields, missing required fields, duplicate step ids, unknown
/// <c>ps_type</c>s, dependency cycles, bad write modes and unresolvable placeholders are errors that name the file,
/// line, field and what was expected.
/// </summary>
public static partial class PipelineLoader
{
    /// <summary>Placeholders every run provides.</summary>
    public static readonly IReadOnlyList<string> BuiltInPlaceholders =
        ["org_slug", "date", "start_date", "end_date", "env", "dataset", "project_id", "pipeline_id", "run_id"];

    private static readonly string[] RootFields = ["pipeline_id", "description", "schedule", "variables", "parameters", "max_date_range_days", "steps", "notifications"];
    private static readonly string[] StepFields = ["step_id", "ps_type", "description", "depends_on", "config", "destination", "retry", "timeout_seconds", "dq_checks"];
    private static readonly string[] DestinationFields = ["dataset_type", "table", "write_mode", "keys", "partition_column"];
    private static readonly string[] RetryFields = ["max_attempts", "backoff_seconds", "max_backoff_seconds"];
    private static readonly string[] DqFields = ["check", "name", "column", "columns", "values", "value", "expression", "severity"];
    private static readonly string[] NotificationFields = ["on_failure", "on_success", "always"];
    private static readonly string[] DatasetTypes = [DestinationDefinition.OrgDataset, DestinationDefinition.CentralDataset];
    private static readonly Dictionary<string, WriteMode> WriteModes =
        Enum.GetValues<WriteMode>().ToDictionary(m => m.ToConfigName(), StringComparer.Ordinal);

    private static readonly Dictionary<string, DqCheckKind> DqKinds = new(StringComparer.Ordinal)
    {
        ["not_null"] = DqCheckKind.NotNull,
        ["unique"] = DqCheckKind.Unique,
        ["accepted_values"] = DqCheckKind.AcceptedValues,
        ["row_count_min"] = DqCheckKind.RowCountMin,
        ["row_count_max"] = DqCheckKind.RowCountMax,
        ["expression"] = DqCheckKind.Expression,
    };

    public static PipelineDefinition LoadFile(string file, string path, PipelineLoadContext? context = null)
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

        return Parse(text, file, path, context);
    }

    public static PipelineDefinition Parse(string yaml, string sourceFile, string path, PipelineLoadContext? context = null)
    {
        context ??= PipelineLoadContext.Unchecked;
        var reader = new YamlConfigReader(sourceFile);
        YamlNode? document;
        try
        {
            RejectAliases(yaml, sourceFile);
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            if (stream.Documents.Count > 1)
            {
                throw new ConfigurationErrorException(sourceFile, stream.Documents[1].RootNode.Start.Line, null, "one pipeline per file; found several YAML documents");
            }

            document = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        }
        catch (YamlException ex)
        {
            var message = ex.InnerException?.Message ?? ex.Message;
            // Start is where the scanner was when it noticed; End is the token that broke it (a tab, a bad indent).
            throw new ConfigurationErrorException(sourceFile, ex.End.Line, null, $"invalid YAML: {message}");
        }
        catch (ArgumentException ex)
        {
            // YamlDotNet reports a duplicate mapping key this way.
            throw new ConfigurationErrorException(sourceFile, null, null, $"invalid YAML: {ex.Message}");
        }

        if (document is null || YamlConfigReader.IsNull(document))
        {
            throw new ConfigurationErrorException(sourceFile, 1, null, "the file is empty; expected a pipeline with pipeline_id and steps");
        }

        var root = reader.Mapping(document, "(root)");
        if (reader.GetKey(root, "pipeline") is { } nested)
        {
            throw reader.Error(nested, "pipeline", "pipeline fields belong at the root of the file, not under a 'pipeline:' block; remove it and outdent its fields");
        }

        reader.OnlyKnownFields(root, string.Empty, RootFields);
        var pipelineId = reader.RequiredString(root, "pipeline_id", "pipeline_id");
        var variables = ReadVariables(reader, root);
        var parameters = reader.StringList(root, "parameters", "parameters");
        foreach (var (name, i) in parameters.Select((p, i) => (p, i)))
        {
            if (!SqlIdentifier.IsValid(name))
            {
                throw reader.Error(reader.Item(reader.Get(root, "parameters"), i), $"parameters[{i}]", $"'{name}' must be snake_case ({SqlIdentifier.Pattern})");
            }
        }

        var known = new HashSet<string>(BuiltInPlaceholders.Concat(variables.Keys).Concat(parameters), StringComparer.Ordinal);
        CheckPlaceholders(reader, reader.Get(root, "pipeline_id")!, "pipeline_id", pipelineId, known);
        foreach (var (name, value) in variables)
        {
            CheckPlaceholders(reader, reader.Get((YamlMappingNode)reader.Get(root, "variables")!, name)!, $"variables.{name}", value, known);
        }

        var stepsNode = reader.Get(root, "steps");
        if (stepsNode is null || YamlConfigReader.IsNull(stepsNode))
        {
            throw reader.Error(root, "steps", "'steps' is required: a list of at least one step");
        }

        var stepList = reader.Sequence(stepsNode, "steps");
        if (stepList.Children.Count == 0)
        {
            throw reader.Error(stepList, "steps", "a pipeline needs at least one step");
        }

        var steps = new List<StepDefinition>();
        for (var i = 0; i < stepList.Children.Count; i++)
        {
            var step = ReadStep(reader, stepList.Children[i], $"steps[{i}]", context, known);
            if (steps.Any(s => s.StepId == step.StepId))
            {
                throw reader.Error(reader.Get((YamlMappingNode)stepList.Children[i], "step_id"), $"steps[{i}].step_id", $"step_id '{step.StepId}' is used twice; step ids must be unique");
            }

            steps.Add(step);
        }

        YamlNode? DependsOnNode(int i) => reader.Get((YamlMappingNode)stepList.Children[i], "depends_on");
        for (var i = 0; i < steps.Count; i++)
        {
            foreach (var dependency in steps[i].DependsOn)
            {
                if (dependency == steps[i].StepId)
                {
                    throw reader.Error(DependsOnNode(i), $"steps[{i}].depends_on", $"step '{dependency}' cannot depend on itself");
                }

                if (steps.All(s => s.StepId != dependency))
                {
                    throw reader.Error(DependsOnNode(i), $"steps[{i}].depends_on", $"'{dependency}' is not a step of this pipeline; steps are: {string.Join(", ", steps.Select(s => s.StepId))}");
                }
            }
        }

        if (StepOrder.FindCycle(steps) is { Count: > 0 } cycle)
        {
            var first = steps.FindIndex(s => s.StepId == cycle[0]);
            throw reader.Error(DependsOnNode(first), $"steps[{first}].depends_on", $"dependency cycle: {string.Join(" -> ", cycle.Append(cycle[0]))}");
        }

        var definition = new PipelineDefinition(
            path,
            sourceFile,
            pipelineId,
            reader.OptionalString(root, "description", "description"),
            ReadSchedule(reader, root),
            variables,
            steps,
            ReadNotifications(reader, root),
            reader.OptionalInt(root, "max_date_range_days", "max_date_range_days", 1, 3660) ?? PipelineDefinition.DefaultMaxDateRangeDays,
            parameters.ToHashSet(StringComparer.Ordinal));
        return definition;
    }

    /// <summary>
    /// Pipeline configs have no use for YAML anchors and aliases, and aliases let a small text expand into an
    /// exponentially large tree (a "billion laughs"), so they are refused before the tree is built.
    /// </summary>
    private static void RejectAliases(string yaml, string sourceFile)
    {
        var parser = new Parser(new StringReader(yaml));
        while (parser.MoveNext())
        {
            switch (parser.Current)
            {
                case YamlDotNet.Core.Events.AnchorAlias alias:
                    throw new ConfigurationErrorException(sourceFile, alias.Start.Line, null, $"YAML aliases (*{alias.Value}) are not supported in pipeline configs; write the value out");
                case YamlDotNet.Core.Events.NodeEvent { Anchor.IsEmpty: false } node:
                    throw new ConfigurationErrorException(sourceFile, node.Start.Line, null, $"YAML anchors (&{node.Anchor}) are not supported in pipeline configs; write the value out");
            }
        }
    }

    private static StepDefinition ReadStep(YamlConfigReader reader, YamlNode node, string field, PipelineLoadContext context, HashSet<string> known)
    {
        if (YamlConfigReader.IsNull(node))
        {
            throw reader.Error(node, field, "a step must be a mapping with step_id and ps_type");
        }

        var map = reader.Mapping(node, field);
        reader.OnlyKnownFields(map, field, StepFields);
        var stepId = reader.RequiredString(map, "step_id", $"{field}.step_id");
        if (!SqlIdentifier.IsValid(stepId))
        {
            throw reader.Error(reader.Get(map, "step_id"), $"{field}.step_id", $"'{stepId}' must be snake_case ({SqlIdentifier.Pattern})");
        }

        var psType = reader.RequiredString(map, "ps_type", $"{field}.ps_type");
        if (!context.IsKnownPsType(psType))
        {
            throw reader.Error(reader.Get(map, "ps_type"), $"{field}.ps_type", $"unknown ps_type '{psType}'; registered: {string.Join(", ", context.KnownPsTypes!.Order(StringComparer.Ordinal))}");
        }

        var config = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (reader.Get(map, "config") is { } configNode && !YamlConfigReader.IsNull(configNode))
        {
            var configMap = reader.Mapping(configNode, $"{field}.config");
            foreach (var (key, value) in configMap.Children)
            {
                var name = ((YamlScalarNode)key).Value ?? string.Empty;
                CheckPlaceholderTree(reader, value, $"{field}.config.{name}", known);
                config[name] = reader.ToPlain(value);
            }
        }

        var destination = ReadDestination(reader, map, field, context);
        var checks = ReadDqChecks(reader, map, field, destination, context);
        if (reader.Get(map, "dq_checks") is { } dqNode)
        {
            CheckPlaceholderTree(reader, dqNode, $"{field}.dq_checks", known);
        }
        return new StepDefinition(
            stepId,
            psType,
            reader.OptionalString(map, "description", $"{field}.description"),
            reader.StringList(map, "depends_on", $"{field}.depends_on"),
            config,
            reader.OptionalInt(map, "timeout_seconds", $"{field}.timeout_seconds", 1, 86_400),
            ReadRetry(reader, map, field),
            destination,
            checks,
            (int)node.Start.Line);
    }

    private static DestinationDefinition? ReadDestination(YamlConfigReader reader, YamlMappingNode step, string field, PipelineLoadContext context)
    {
        var node = reader.Get(step, "destination");
        if (node is null || YamlConfigReader.IsNull(node))
        {
            return null;
        }

        var where = $"{field}.destination";
        var map = reader.Mapping(node, where);
        reader.OnlyKnownFields(map, where, DestinationFields);
        var datasetType = reader.OptionalString(map, "dataset_type", $"{where}.dataset_type") ?? DestinationDefinition.OrgDataset;
        if (!DatasetTypes.Contains(datasetType))
        {
            throw reader.Error(reader.Get(map, "dataset_type"), $"{where}.dataset_type", $"'{datasetType}' is not a dataset type; expected one of: {string.Join(", ", DatasetTypes)}");
        }

        var table = reader.RequiredString(map, "table", $"{where}.table");
        if (!SqlIdentifier.IsValid(table))
        {
            throw reader.Error(reader.Get(map, "table"), $"{where}.table", $"'{table}' is not a valid table name ({SqlIdentifier.Pattern})");
        }

        var modeText = reader.RequiredString(map, "write_mode", $"{where}.write_mode");
        if (!WriteModes.TryGetValue(modeText, out var mode))
        {
            var suggestion = modeText.ToUpperInvariant() switch
            {
                "WRITE_APPEND" or "APPEND" => " (BigQuery's WRITE_APPEND is 'append')",
                "WRITE_TRUNCATE" or "TRUNCATE" => " (BigQuery's WRITE_TRUNCATE is 'truncate')",
                "MERGE" or "MERGE_PARTITION" or "REPLACE_PARTITION" => "; did you mean 'merge_partition'?",
                "UPSERT" => "; write modes are lowercase: 'upsert'",
                _ => string.Empty,
            };
            throw reader.Error(reader.Get(map, "write_mode"), $"{where}.write_mode", $"'{modeText}' is not a write mode{suggestion}; expected one of: {string.Join(", ", WriteModes.Keys)}");
        }

        var keys = reader.StringList(map, "keys", $"{where}.keys");
        var partition = reader.OptionalString(map, "partition_column", $"{where}.partition_column");
        if (mode == WriteMode.Upsert && keys.Count == 0)
        {
            throw reader.Error(map, $"{where}.keys", "write_mode upsert needs keys: the columns that identify a row");
        }

        if (mode == WriteMode.ReplacePartitions && keys.Count == 0)
        {
            throw reader.Error(map, $"{where}.keys", "write_mode replace_partitions needs keys: the columns that identify a partition (such as an account and a day)");
        }

        if (mode == WriteMode.MergePartition && partition is null)
        {
            throw reader.Error(map, $"{where}.partition_column", "write_mode merge_partition needs partition_column: the date column of the run's slice");
        }

        if (context.FindTable(table) is { } schema)
        {
            foreach (var (column, key) in keys.Select(k => ((string?)k, "keys")).Append((partition, "partition_column")))
            {
                if (column is not null && schema.FindColumn(column) is null)
                {
                    throw reader.Error(reader.Get(map, key), $"{where}.{key}", $"'{column}' is not a column of {table}; columns: {string.Join(", ", schema.Columns.Select(c => c.Name))}");
                }
            }

            if (partition is not null && schema.FindColumn(partition)!.Type is not (ColumnType.Date or ColumnType.Timestamp))
            {
                throw reader.Error(reader.Get(map, "partition_column"), $"{where}.partition_column", $"'{partition}' must be a DATE or TIMESTAMP column");
            }
        }
        else if (context.KnownTables is not null)
        {
            throw reader.Error(reader.Get(map, "table"), $"{where}.table", $"no table schema named '{table}' under configs/ (add configs/<provider>/schemas/{table}.json)");
        }

        return new DestinationDefinition(datasetType, table, mode, keys, partition);
    }

    private static List<DqCheckDefinition> ReadDqChecks(YamlConfigReader reader, YamlMappingNode step, string field, DestinationDefinition? destination, PipelineLoadContext context)
    {
        var node = reader.Get(step, "dq_checks");
        if (node is null || YamlConfigReader.IsNull(node))
        {
            return [];
        }

        var list = reader.Sequence(node, $"{field}.dq_checks");
        if (destination is null && list.Children.Count > 0)
        {
            throw reader.Error(node, $"{field}.dq_checks", "dq_checks run against the step's destination table; add a destination");
        }

        var schema = destination is null ? null : context.FindTable(destination.Table);
        var checks = new List<DqCheckDefinition>();
        for (var i = 0; i < list.Children.Count; i++)
        {
            var where = $"{field}.dq_checks[{i}]";
            var map = reader.Mapping(list.Children[i], where);
            reader.OnlyKnownFields(map, where, DqFields);
            var kindText = reader.RequiredString(map, "check", $"{where}.check");
            if (!DqKinds.TryGetValue(kindText, out var kind))
            {
                throw reader.Error(reader.Get(map, "check"), $"{where}.check", $"'{kindText}' is not a check; expected one of: {string.Join(", ", DqKinds.Keys)}");
            }

            var severityText = reader.OptionalString(map, "severity", $"{where}.severity") ?? "error";
            var severity = severityText switch
            {
                "warn" => DqSeverity.Warn,
                "error" => DqSeverity.Error,
                _ => throw reader.Error(reader.Get(map, "severity"), $"{where}.severity", $"'{severityText}' is not a severity; expected warn or error"),
            };

            var column = reader.OptionalString(map, "column", $"{where}.column");
            var columns = reader.StringList(map, "columns", $"{where}.columns");
            var values = reader.StringList(map, "values", $"{where}.values");
            var valueText = reader.OptionalString(map, "value", $"{where}.value");
            long? value = null;
            if (valueText is not null)
            {
                value = long.TryParse(valueText, out var v) && v >= 0 ? v : throw reader.Error(reader.Get(map, "value"), $"{where}.value", $"expected a non-negative whole number, found '{valueText}'");
            }

            var expression = reader.OptionalString(map, "expression", $"{where}.expression");
            string? missing = kind switch
            {
                DqCheckKind.NotNull when column is null => "column",
                DqCheckKind.AcceptedValues when column is null => "column",
                DqCheckKind.AcceptedValues when values.Count == 0 => "values",
                DqCheckKind.Unique when column is null && columns.Count == 0 => "column",
                DqCheckKind.RowCountMin or DqCheckKind.RowCountMax when value is null => "value",
                DqCheckKind.Expression when string.IsNullOrWhiteSpace(expression) => "expression",
                _ => null,
            };
            if (missing is not null)
            {
                throw reader.Error(map, $"{where}.{missing}", $"check {kindText} needs '{missing}'");
            }

            if (expression is not null && expression.Contains(';', StringComparison.Ordinal))
            {
                throw reader.Error(reader.Get(map, "expression"), $"{where}.expression", "an expression is one SQL boolean condition; ';' is not allowed");
            }

            var allColumns = columns.Prepend(column).OfType<string>().ToList();
            foreach (var (c, key) in columns.Select(c => ((string?)c, "columns")).Prepend((column, "column")))
            {
                if (c is not null && (!SqlIdentifier.IsValid(c) || (schema is not null && schema.FindColumn(c) is null)))
                {
                    throw reader.Error(reader.Get(map, key), $"{where}.{key}", $"'{c}' is not a column of {destination!.Table}");
                }
            }

            var name = reader.OptionalString(map, "name", $"{where}.name") ?? $"{kindText}{(allColumns.Count > 0 ? "_" + string.Join("_", allColumns) : string.Empty)}";
            checks.Add(new DqCheckDefinition(name, kind, column, columns.Count > 0 ? columns : column is null ? [] : [column], values, value, expression, severity));
        }

        return checks;
    }

    private static RetryPolicy ReadRetry(YamlConfigReader reader, YamlMappingNode step, string field)
    {
        var node = reader.Get(step, "retry");
        if (node is null || YamlConfigReader.IsNull(node))
        {
            return RetryPolicy.None;
        }

        var where = $"{field}.retry";
        var map = reader.Mapping(node, where);
        reader.OnlyKnownFields(map, where, RetryFields);
        var attempts = reader.OptionalInt(map, "max_attempts", $"{where}.max_attempts", 1, 10) ?? 3;
        var backoff = reader.OptionalNumber(map, "backoff_seconds", $"{where}.backoff_seconds", 0, 3600) ?? 5;
        var maxBackoff = reader.OptionalNumber(map, "max_backoff_seconds", $"{where}.max_backoff_seconds", 0, 86_400) ?? Math.Max(backoff * 16, backoff);
        if (maxBackoff < backoff)
        {
            throw reader.Error(reader.Get(map, "max_backoff_seconds") ?? map, $"{where}.max_backoff_seconds", "max_backoff_seconds must be at least backoff_seconds");
        }

        return new RetryPolicy(attempts, backoff, maxBackoff);
    }

    private static Dictionary<string, string> ReadVariables(YamlConfigReader reader, YamlMappingNode root)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        var node = reader.Get(root, "variables");
        if (node is null || YamlConfigReader.IsNull(node))
        {
            return variables;
        }

        foreach (var (key, value) in reader.Mapping(node, "variables").Children)
        {
            var name = ((YamlScalarNode)key).Value ?? string.Empty;
            if (!SqlIdentifier.IsValid(name))
            {
                throw reader.Error(key, $"variables.{name}", $"variable names must be snake_case ({SqlIdentifier.Pattern})");
            }

            if (BuiltInPlaceholders.Contains(name))
            {
                throw reader.Error(key, $"variables.{name}", $"'{name}' is a built-in placeholder and cannot be redefined");
            }

            variables[name] = value is YamlScalarNode scalar && !YamlConfigReader.IsNull(scalar)
                ? scalar.Value!
                : throw reader.Error(value, $"variables.{name}", "a variable must be a text value");
        }

        return variables;
    }

    private static string? ReadSchedule(YamlConfigReader reader, YamlMappingNode root)
    {
        var schedule = reader.OptionalString(root, "schedule", "schedule");
        if (schedule is not null && schedule.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length != 5)
        {
            throw reader.Error(reader.Get(root, "schedule"), "schedule", $"'{schedule}' is not a 5-field cron expression (minute hour day-of-month month day-of-week)");
        }

        return schedule;
    }

    private static NotificationSettings ReadNotifications(YamlConfigReader reader, YamlMappingNode root)
    {
        var node = reader.Get(root, "notifications");
        if (node is null || YamlConfigReader.IsNull(node))
        {
            return NotificationSettings.None;
        }

        var map = reader.Mapping(node, "notifications");
        reader.OnlyKnownFields(map, "notifications", NotificationFields);
        string[] channels = ["email", "slack"];
        IReadOnlyList<string> Read(string key)
        {
            var list = reader.StringList(map, key, $"notifications.{key}");
            foreach (var channel in list)
            {
                if (!channels.Contains(channel))
                {
                    throw reader.Error(reader.Get(map, key), $"notifications.{key}", $"'{channel}' is not a channel; expected email or slack");
                }
            }

            return list;
        }

        return new NotificationSettings(Read("on_failure"), Read("on_success"), Read("always"));
    }

    private static void CheckPlaceholderTree(YamlConfigReader reader, YamlNode node, string field, HashSet<string> known)
    {
        switch (node)
        {
            case YamlScalarNode scalar when scalar.Value is { } text:
                CheckPlaceholders(reader, node, field, text, known);
                break;
            case YamlSequenceNode list:
                for (var i = 0; i < list.Children.Count; i++)
                {
                    CheckPlaceholderTree(reader, list.Children[i], $"{field}[{i}]", known);
                }

                break;
            case YamlMappingNode map:
                foreach (var (key, value) in map.Children)
                {
                    CheckPlaceholderTree(reader, value, $"{field}.{((YamlScalarNode)key).Value}", known);
                }

                break;
        }
    }

    private static void CheckPlaceholders(YamlConfigReader reader, YamlNode node, string field, string text, HashSet<string> known)
    {
        foreach (Match match in PlaceholderPattern().Matches(text))
        {
            var name = match.Groups[1].Value;
            if (!known.Contains(name))
            {
                throw reader.Error(node, field, $"placeholder '{{{name}}}' cannot be resolved; known: {string.Join(", ", known.Order(StringComparer.Ordinal).Select(k => "{" + k + "}"))}");
            }
        }
    }

    [GeneratedRegex(@"\{([a-z_][a-z0-9_]{0,62})\}")]
    internal static partial Regex PlaceholderPattern();
}

/// <summary>What the loader checks a pipeline against: registered processors and known table schemas.</summary>
/// <param name="KnownPsTypes">Registered <c>ps_type</c>s; <c>null</c> skips the check (parsing in isolation).</param>
/// <param name="KnownTables">Table schemas by name; <c>null</c> skips destination checks.</param>
public sealed record PipelineLoadContext(IReadOnlySet<string>? KnownPsTypes, IReadOnlyDictionary<string, TableSchema>? KnownTables)
{
    public static readonly PipelineLoadContext Unchecked = new(null, null);

    public bool IsKnownPsType(string psType) => KnownPsTypes is null || KnownPsTypes.Contains(psType);

    public TableSchema? FindTable(string table) => KnownTables is not null && KnownTables.TryGetValue(table, out var schema) ? schema : null;
}
