using Convergence.Core.Configuration;

namespace Convergence.Core.Storage;

/// <summary>
/// Every table schema under <c>configs/</c> (files in any <c>schemas/</c> folder), by table name. Table names are
/// unique across the whole folder, so a pipeline names a destination by table alone.
/// </summary>
public sealed class TableSchemaCatalog
{
    private readonly Dictionary<string, TableSchema> _tables;

    public TableSchemaCatalog(string configsRoot)
    {
        _tables = new Dictionary<string, TableSchema>(StringComparer.Ordinal);
        var files = Directory.EnumerateFiles(configsRoot, "*.json", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == "schemas")
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var schema = TableSchema.Load(file);
            if (!_tables.TryAdd(schema.Name, schema))
            {
                throw new ConfigurationErrorException(file, null, "table", $"table '{schema.Name}' is also defined elsewhere under configs/; table names must be unique");
            }
        }
    }

    public IReadOnlyDictionary<string, TableSchema> Tables => _tables;

    public TableSchema Get(string table) =>
        _tables.TryGetValue(table, out var schema)
            ? schema
            : throw new ConfigurationErrorException(table, null, null, $"no table schema named '{table}' under configs/");
}
