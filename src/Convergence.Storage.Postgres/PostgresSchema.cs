using System.Text;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.Storage.Postgres;

/// <summary>DDL for PostgreSQL from the JSON table schemas: one schema per dataset, types mapped faithfully.</summary>
/// <remarks>
/// STRING → <c>text</c>, INT64 → <c>bigint</c>, FLOAT64 → <c>double precision</c>, NUMERIC → <c>numeric</c> (exact),
/// BOOL → <c>boolean</c>, DATE → <c>date</c>, TIMESTAMP → <c>timestamptz</c>, JSON → <c>jsonb</c>.
/// </remarks>
internal static class PostgresSchema
{
    public static string Quote(string identifier) => "\"" + SqlIdentifier.Require(identifier, "identifier") + "\"";

    /// <summary>The qualified name <c>"dataset"."table"</c>.</summary>
    public static string Qualified(DatasetRef dataset, string table) => Quote(dataset.Name) + "." + Quote(table);

    public static IEnumerable<string> CreateStatements(DatasetRef dataset, TableSchema schema)
    {
        var sql = new StringBuilder();
        sql.Append("CREATE TABLE IF NOT EXISTS ").Append(Qualified(dataset, schema.Name)).Append(" (");
        sql.AppendJoin(", ", schema.Columns.Select(c => $"{Quote(c.Name)} {TypeOf(c.Type)}{(c.Required ? " NOT NULL" : string.Empty)}"));
        if (schema.PrimaryKey.Count > 0)
        {
            sql.Append(", PRIMARY KEY (").AppendJoin(", ", schema.PrimaryKey.Select(Quote)).Append(')');
        }

        foreach (var unique in schema.UniqueKeys)
        {
            sql.Append(", UNIQUE (").AppendJoin(", ", unique.Select(Quote)).Append(')');
        }

        sql.Append(')');
        yield return sql.ToString();

        foreach (var index in schema.Indexes)
        {
            yield return CreateIndex(dataset, schema, index);
        }
    }

    /// <summary>
    /// <c>CREATE INDEX IF NOT EXISTS</c> of the schema's index on <paramref name="columns"/>: a B-tree, or for a
    /// block-range index a BRIN index whose page ranges are summarised by autovacuum as they fill (a range not yet
    /// summarised is simply scanned, so results never depend on it).
    /// </summary>
    public static string CreateIndex(DatasetRef dataset, TableSchema schema, IReadOnlyList<string> columns) =>
        schema.IsBlockRange(columns)
            ? $"CREATE INDEX IF NOT EXISTS {Quote(schema.IndexName(columns))} ON {Qualified(dataset, schema.Name)} USING brin ({string.Join(", ", columns.Select(Quote))}) WITH (autosummarize = on)"
            : $"CREATE INDEX IF NOT EXISTS {Quote(schema.IndexName(columns))} ON {Qualified(dataset, schema.Name)} ({string.Join(", ", columns.Select(Quote))})";

    /// <summary><c>ALTER TABLE … ADD COLUMN</c> for a NULLABLE column.</summary>
    public static string AddColumn(DatasetRef dataset, TableSchema schema, ColumnSchema column) =>
        $"ALTER TABLE {Qualified(dataset, schema.Name)} ADD COLUMN {Quote(column.Name)} {TypeOf(column.Type)}";

    /// <summary><c>ALTER TABLE … ALTER COLUMN … DROP NOT NULL</c>: a REQUIRED column made NULLABLE.</summary>
    public static string DropNotNull(DatasetRef dataset, TableSchema schema, ColumnSchema column) =>
        $"ALTER TABLE {Qualified(dataset, schema.Name)} ALTER COLUMN {Quote(column.Name)} DROP NOT NULL";

    /// <summary>The type as <c>information_schema.columns.data_type</c> names it (which spells out <c>timestamptz</c>).</summary>
    public static string CatalogTypeOf(ColumnType type) => type == ColumnType.Timestamp ? "timestamp with time zone" : TypeOf(type);

    public static string TypeOf(ColumnType type) => type switch
    {
        ColumnType.Int64 => "bigint",
        ColumnType.Float64 => "double precision",
        ColumnType.Numeric => "numeric",
        ColumnType.Bool => "boolean",
        ColumnType.Date => "date",
        ColumnType.Timestamp => "timestamptz",
        ColumnType.Json => "jsonb",
        _ => "text",
    };
}
