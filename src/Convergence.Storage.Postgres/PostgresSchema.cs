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
    /// <summary>PostgreSQL truncates identifiers longer than this.</summary>
    public const int MaxIdentifierLength = 63;

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
            var name = $"ix_{schema.Name}_{string.Join("_", index)}";
            yield return $"CREATE INDEX IF NOT EXISTS {Quote(name.Length > MaxIdentifierLength ? name[..MaxIdentifierLength] : name)} ON {Qualified(dataset, schema.Name)} ({string.Join(", ", index.Select(Quote))})";
        }
    }

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
