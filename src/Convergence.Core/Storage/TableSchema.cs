using Convergence.Core.Configuration;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Convergence.Core.Storage;

/// <summary>Column types of the JSON table schemas, named as BigQuery names them.</summary>
public enum ColumnType
{
    String,
    Int64,
    Float64,
    Numeric,
    Bool,
    Date,
    Timestamp,
    Json,
}

/// <summary>One column of a <see cref="TableSchema"/>.</summary>
public sealed record ColumnSchema(string Name, ColumnType Type, bool Required, string? Description);

/// <summary>
/// A table defined by a JSON file under <c>configs/</c>: the one definition every storage backend creates.
/// </summary>
/// <param name="Indexes">Every secondary index (column lists), ordinary and <see cref="BlockRangeIndexes"/> alike.</param>
public sealed record TableSchema(
    string Name,
    string? Description,
    IReadOnlyList<ColumnSchema> Columns,
    IReadOnlyList<string> PrimaryKey,
    IReadOnlyList<IReadOnlyList<string>> UniqueKeys,
    IReadOnlyList<IReadOnlyList<string>> Indexes)
{
    /// <summary>
    /// The <see cref="Indexes"/> declared under <c>block_range_indexes</c>: on columns whose values follow the order rows
    /// are loaded in (the usage day of a raw table loaded day by day or month by month). PostgreSQL makes them BRIN
    /// indexes, which keep a summary per range of pages rather than an entry per row, so a bulk load does no per-row
    /// index work; backends without block-range indexes make them ordinary ones.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<string>> BlockRangeIndexes { get; init; } = [];

    public ColumnSchema? FindColumn(string name) => Columns.FirstOrDefault(c => c.Name == name);

    /// <summary>Whether the index on <paramref name="columns"/> is one of the <see cref="BlockRangeIndexes"/>.</summary>
    public bool IsBlockRange(IReadOnlyList<string> columns) => BlockRangeIndexes.Any(i => i.SequenceEqual(columns, StringComparer.Ordinal));

    /// <summary>
    /// The name every adapter gives the secondary index on <paramref name="columns"/>: <c>ix_{table}_{columns}</c>, cut
    /// to <see cref="SqlIdentifier.MaxLength"/>.
    /// </summary>
    public string IndexName(IReadOnlyList<string> columns)
    {
        var name = $"ix_{Name}_{string.Join("_", columns)}";
        return name.Length > SqlIdentifier.MaxLength ? name[..SqlIdentifier.MaxLength] : name;
    }

    /// <summary>Loads and validates the schema in <paramref name="path"/>; errors name the file and the field.</summary>
    public static TableSchema Load(string path)
    {
        TableSchemaFile? file;
        try
        {
            using var stream = File.OpenRead(path);
            file = JsonSerializer.Deserialize(stream, TableSchemaJson.Default.TableSchemaFile);
        }
        catch (JsonException ex)
        {
            throw new ConfigurationErrorException(path, ex.LineNumber + 1, ex.Path, $"invalid table schema JSON: {ex.Message}");
        }

        if (file is null)
        {
            throw new ConfigurationErrorException(path, null, "$", "the file is empty");
        }

        return file.ToSchema(path);
    }

    /// <summary>Loads every <c>*.json</c> schema in <paramref name="directory"/>, ordered by table name.</summary>
    public static IReadOnlyList<TableSchema> LoadDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new ConfigurationErrorException(directory, null, null, "the schema folder does not exist");
        }

        return [.. Directory.EnumerateFiles(directory, "*.json").Order(StringComparer.Ordinal).Select(Load).OrderBy(s => s.Name, StringComparer.Ordinal)];
    }

    internal sealed class TableSchemaFile
    {
        [JsonPropertyName("table")]
        public string? Table { get; set; }

        [JsonPropertyName("description")]
        public string? Description { get; set; }

        [JsonPropertyName("columns")]
        public List<ColumnFile>? Columns { get; set; }

        [JsonPropertyName("primary_key")]
        public List<string>? PrimaryKey { get; set; }

        [JsonPropertyName("unique")]
        public List<List<string>>? Unique { get; set; }

        [JsonPropertyName("indexes")]
        public List<List<string>>? Indexes { get; set; }

        [JsonPropertyName("block_range_indexes")]
        public List<List<string>>? BlockRangeIndexes { get; set; }

        public TableSchema ToSchema(string path)
        {
            if (!SqlIdentifier.IsValid(Table))
            {
                throw new ConfigurationErrorException(path, null, "table", $"'{Table}' is not a valid table name ({SqlIdentifier.Pattern})");
            }

            if (Columns is null || Columns.Count == 0)
            {
                throw new ConfigurationErrorException(path, null, "columns", "a table needs at least one column");
            }

            var columns = new List<ColumnSchema>();
            for (var i = 0; i < Columns.Count; i++)
            {
                var c = Columns[i];
                var where = $"columns[{i}]";
                if (c is null)
                {
                    throw new ConfigurationErrorException(path, null, where, "a column must be an object with name and type");
                }

                if (!SqlIdentifier.IsValid(c.Name))
                {
                    throw new ConfigurationErrorException(path, null, $"{where}.name", $"'{c.Name}' is not a valid column name ({SqlIdentifier.Pattern})");
                }

                if (columns.Any(x => x.Name == c.Name))
                {
                    throw new ConfigurationErrorException(path, null, $"{where}.name", $"column '{c.Name}' is declared twice");
                }

                // Exact names only: Enum.TryParse would also take numbers and comma-separated lists.
                var typeName = Enum.GetNames<ColumnType>().FirstOrDefault(n => string.Equals(n, c.Type, StringComparison.OrdinalIgnoreCase));
                if (typeName is null)
                {
                    throw new ConfigurationErrorException(path, null, $"{where}.type", $"'{c.Type}' is not a column type; expected one of {string.Join(", ", Enum.GetNames<ColumnType>().Select(n => n.ToUpperInvariant()))}");
                }

                var mode = c.Mode ?? "NULLABLE";
                if (mode is not ("NULLABLE" or "REQUIRED"))
                {
                    throw new ConfigurationErrorException(path, null, $"{where}.mode", $"'{mode}' is not a mode; expected NULLABLE or REQUIRED");
                }

                columns.Add(new ColumnSchema(c.Name!, Enum.Parse<ColumnType>(typeName), mode == "REQUIRED", c.Description));
            }

            IReadOnlyList<string> CheckKey(List<string>? key, string where)
            {
                if (key is null || key.Count == 0)
                {
                    throw new ConfigurationErrorException(path, null, where, "a key must be a non-empty list of column names");
                }

                foreach (var name in key)
                {
                    if (columns.All(c => c.Name != name))
                    {
                        throw new ConfigurationErrorException(path, null, where, $"'{name}' is not a column of {Table}");
                    }
                }

                return key;
            }

            var indexes = (Indexes ?? []).Select((k, i) => CheckKey(k, $"indexes[{i}]")).ToList();
            var blockRange = (BlockRangeIndexes ?? []).Select((k, i) => CheckKey(k, $"block_range_indexes[{i}]")).ToList();
            var all = indexes.Concat(blockRange).ToList();
            for (var i = 0; i < all.Count; i++)
            {
                if (all.Take(i).Any(earlier => earlier.SequenceEqual(all[i], StringComparer.Ordinal)))
                {
                    var where = i < indexes.Count ? $"indexes[{i}]" : $"block_range_indexes[{i - indexes.Count}]";
                    throw new ConfigurationErrorException(path, null, where, $"an index on ({string.Join(", ", all[i])}) is declared twice");
                }
            }

            return new TableSchema(
                Table!,
                Description,
                columns,
                PrimaryKey is null ? [] : CheckKey(PrimaryKey, "primary_key"),
                [.. (Unique ?? []).Select((k, i) => CheckKey(k, $"unique[{i}]"))],
                all)
            {
                BlockRangeIndexes = blockRange,
            };
        }
    }

    internal sealed class ColumnFile
    {
        [JsonPropertyName("name")]
        public string? Name { get; set; }

        [JsonPropertyName("type")]
        public string? Type { get; set; }

        [JsonPropertyName("mode")]
        public string? Mode { get; set; }

        [JsonPropertyName("description")]
        public string? Description { get; set; }
    }
}

[JsonSerializable(typeof(TableSchema.TableSchemaFile))]
[JsonSourceGenerationOptions(UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, ReadCommentHandling = JsonCommentHandling.Skip, AllowDuplicateProperties = false)]
internal sealed partial class TableSchemaJson : JsonSerializerContext;
