using Convergence.Core.Organizations;

namespace Convergence.Core.Storage;

/// <summary>A column of an existing table as its adapter's catalogue describes it.</summary>
/// <param name="StoredType">The adapter's type name, such as <c>INTEGER</c> (SQLite) or <c>bigint</c> (PostgreSQL).</param>
/// <param name="NotNull">True when the column refuses NULL (a REQUIRED column).</param>
public sealed record ExistingColumn(string Name, string StoredType, bool NotNull);

/// <summary>
/// What bringing an existing table up to its <see cref="TableSchema"/> takes: the one place that decides what schema
/// evolution applies and what it refuses, whatever the adapter.
/// </summary>
/// <remarks>
/// <para>Applied: a NULLABLE column of the schema the table lacks is added (existing rows read NULL); a column NOT NULL in
/// the table and NULLABLE in the schema is relaxed; a secondary index of the schema the table lacks is created.</para>
/// <para>Refused, with a <see cref="TableSchemaConflictException"/> before anything changes: a REQUIRED column the table
/// lacks (existing rows have no value for it), a type change, a NULLABLE column made REQUIRED, a column of the table the
/// schema no longer has. Primary and unique keys are not compared. Adapters compare types by their own names, so a
/// change between logical types one adapter stores alike (SQLite keeps DATE and STRING both as TEXT) passes there.</para>
/// </remarks>
public sealed class TableSchemaDiff
{
    private TableSchemaDiff(IReadOnlyList<ColumnSchema> columnsToAdd, IReadOnlyList<ColumnSchema> columnsToRelax, IReadOnlyList<IReadOnlyList<string>> indexesToCreate)
    {
        ColumnsToAdd = columnsToAdd;
        ColumnsToRelax = columnsToRelax;
        IndexesToCreate = indexesToCreate;
    }

    /// <summary>NULLABLE columns of the schema the table lacks, in schema order.</summary>
    public IReadOnlyList<ColumnSchema> ColumnsToAdd { get; }

    /// <summary>Columns NOT NULL in the table whose schema makes them NULLABLE.</summary>
    public IReadOnlyList<ColumnSchema> ColumnsToRelax { get; }

    /// <summary>Secondary indexes of the schema (their column lists) the table lacks.</summary>
    public IReadOnlyList<IReadOnlyList<string>> IndexesToCreate { get; }

    /// <summary>True when the table already matches its schema.</summary>
    public bool IsEmpty => ColumnsToAdd.Count == 0 && ColumnsToRelax.Count == 0 && IndexesToCreate.Count == 0;

    /// <summary>
    /// Compares <paramref name="existing"/> (the table's columns and index names, read from the adapter's catalogue)
    /// with <paramref name="schema"/>; <paramref name="storedTypeOf"/> names a column type as the catalogue does.
    /// </summary>
    /// <exception cref="TableSchemaConflictException">The table differs in a way evolution does not apply.</exception>
    public static TableSchemaDiff Compute(
        DatasetRef dataset,
        TableSchema schema,
        IReadOnlyList<ExistingColumn> existing,
        IReadOnlyCollection<string> existingIndexes,
        Func<ColumnType, string> storedTypeOf)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(existing);
        ArgumentNullException.ThrowIfNull(existingIndexes);
        ArgumentNullException.ThrowIfNull(storedTypeOf);

        var conflicts = new List<TableSchemaConflict>();
        var add = new List<ColumnSchema>();
        var relax = new List<ColumnSchema>();
        var byName = existing.ToDictionary(c => c.Name, StringComparer.Ordinal);
        foreach (var column in schema.Columns)
        {
            var wanted = $"{Describe(column.Type)} {(column.Required ? "REQUIRED" : "NULLABLE")}";
            if (!byName.TryGetValue(column.Name, out var current))
            {
                if (column.Required)
                {
                    conflicts.Add(new(column.Name, wanted, "missing", "a new REQUIRED column has no value for the existing rows; add it as NULLABLE"));
                }
                else
                {
                    add.Add(column);
                }

                continue;
            }

            var stored = Describe(current);
            if (!string.Equals(current.StoredType, storedTypeOf(column.Type), StringComparison.OrdinalIgnoreCase))
            {
                conflicts.Add(new(column.Name, wanted, stored, $"a type change ({storedTypeOf(column.Type)} expected)"));
            }
            else if (column.Required && !current.NotNull)
            {
                conflicts.Add(new(column.Name, wanted, stored, "NULLABLE made REQUIRED; existing rows may hold NULL"));
            }
            else if (!column.Required && current.NotNull)
            {
                relax.Add(column);
            }
        }

        foreach (var current in existing.Where(c => schema.FindColumn(c.Name) is null))
        {
            conflicts.Add(new(current.Name, "absent", Describe(current), "the schema no longer has this column; dropping it would lose data"));
        }

        if (conflicts.Count > 0)
        {
            throw new TableSchemaConflictException(dataset, schema.Name, conflicts);
        }

        var indexes = schema.Indexes.Where(i => !existingIndexes.Contains(schema.IndexName(i))).ToList();
        return new TableSchemaDiff(add, relax, indexes);
    }

    private static string Describe(ColumnType type) => type.ToString().ToUpperInvariant();

    private static string Describe(ExistingColumn column) => $"{column.StoredType}{(column.NotNull ? " NOT NULL" : " NULL")}";
}
