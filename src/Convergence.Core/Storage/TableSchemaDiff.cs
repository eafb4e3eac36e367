using Convergence.Core.Organizations;

namespace Convergence.Core.Storage;

/// <summary>A column of an existing table as its adapter's catalogue describes it.</summary>
/// <param name="StoredType">The adapter's type name, such as <c>INTEGER</c> (SQLite) or <c>bigint</c> (PostgreSQL).</param>
/// <param name="NotNull">True when the column refuses NULL (a REQUIRED column).</param>
public sealed record ExistingColumn(string Name, string StoredType, bool NotNull);

/// <summary>The keys of an existing table as its adapter's catalogue describes them, each a list of column names in order.</summary>
/// <param name="PrimaryKey">The primary key's columns; empty when the table has none.</param>
/// <param name="UniqueKeys">Unique constraints and unique indexes other than the primary key.</param>
public sealed record ExistingKeys(IReadOnlyList<string> PrimaryKey, IReadOnlyList<IReadOnlyList<string>> UniqueKeys)
{
    /// <summary>A table without keys.</summary>
    public static ExistingKeys None { get; } = new([], []);
}

/// <summary>
/// What bringing an existing table up to its <see cref="TableSchema"/> takes: the one place that decides what schema
/// evolution applies and what it refuses, whatever the adapter.
/// </summary>
/// <remarks>
/// <para>Applied: a NULLABLE column of the schema the table lacks is added (existing rows read NULL); a column NOT NULL in
/// the table and NULLABLE in the schema is relaxed; a secondary index of the schema the table lacks is created; a primary
/// key or unique key of the schema the table lacks is added (the adapter refuses it with a conflict when existing rows
/// hold duplicates).</para>
/// <para>Refused, with a <see cref="TableSchemaConflictException"/> before anything changes: a REQUIRED column the table
/// lacks (existing rows have no value for it), a type change, a NULLABLE column made REQUIRED, a column of the table the
/// schema no longer has, a primary key on other columns than the schema's, a primary or unique key of the table the schema
/// no longer declares (dropping a key silently changes what an upsert replaces). Adapters compare types by their own names, so a
/// change between logical types one adapter stores alike (SQLite keeps DATE and STRING both as TEXT) passes there.</para>
/// </remarks>
public sealed class TableSchemaDiff
{
    private TableSchemaDiff(
        IReadOnlyList<ColumnSchema> columnsToAdd,
        IReadOnlyList<ColumnSchema> columnsToRelax,
        IReadOnlyList<IReadOnlyList<string>> indexesToCreate,
        bool addPrimaryKey,
        IReadOnlyList<IReadOnlyList<string>> uniqueKeysToAdd)
    {
        ColumnsToAdd = columnsToAdd;
        ColumnsToRelax = columnsToRelax;
        IndexesToCreate = indexesToCreate;
        AddPrimaryKey = addPrimaryKey;
        UniqueKeysToAdd = uniqueKeysToAdd;
    }

    /// <summary>NULLABLE columns of the schema the table lacks, in schema order.</summary>
    public IReadOnlyList<ColumnSchema> ColumnsToAdd { get; }

    /// <summary>Columns NOT NULL in the table whose schema makes them NULLABLE.</summary>
    public IReadOnlyList<ColumnSchema> ColumnsToRelax { get; }

    /// <summary>Secondary indexes of the schema (their column lists) the table lacks.</summary>
    public IReadOnlyList<IReadOnlyList<string>> IndexesToCreate { get; }

    /// <summary>True when the schema declares a primary key and the table has none.</summary>
    public bool AddPrimaryKey { get; }

    /// <summary>Unique keys of the schema (their column lists) the table lacks.</summary>
    public IReadOnlyList<IReadOnlyList<string>> UniqueKeysToAdd { get; }

    /// <summary>True when the table already matches its schema.</summary>
    public bool IsEmpty => ColumnsToAdd.Count == 0 && ColumnsToRelax.Count == 0 && IndexesToCreate.Count == 0 && !AddPrimaryKey && UniqueKeysToAdd.Count == 0;

    /// <summary>How a key reads in messages: <c>PRIMARY KEY (a, b)</c> or <c>UNIQUE (a)</c>.</summary>
    public static string DescribeKey(string kind, IReadOnlyList<string> columns) => $"{kind} ({string.Join(", ", columns)})";

    /// <summary>The conflict an adapter reports when adding a key fails on the existing rows.</summary>
    public static TableSchemaConflictException DuplicatesFor(DatasetRef dataset, TableSchema schema, string kind, IReadOnlyList<string> columns, Exception inner) =>
        new(dataset, schema.Name, [new(string.Join(", ", columns), DescribeKey(kind, columns), "missing", $"the key cannot be added: existing rows hold duplicates or NULLs in its columns ({inner.Message})")]);

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
        Func<ColumnType, string> storedTypeOf) =>
        Compute(dataset, schema, existing, existingIndexes, ExistingKeys.None, storedTypeOf, compareKeys: false);

    /// <summary>
    /// Compares <paramref name="existing"/>, <paramref name="existingIndexes"/> and <paramref name="existingKeys"/> (read
    /// from the adapter's catalogue) with <paramref name="schema"/>, keys included.
    /// </summary>
    /// <exception cref="TableSchemaConflictException">The table differs in a way evolution does not apply.</exception>
    public static TableSchemaDiff Compute(
        DatasetRef dataset,
        TableSchema schema,
        IReadOnlyList<ExistingColumn> existing,
        IReadOnlyCollection<string> existingIndexes,
        ExistingKeys existingKeys,
        Func<ColumnType, string> storedTypeOf) =>
        Compute(dataset, schema, existing, existingIndexes, existingKeys, storedTypeOf, compareKeys: true);

    private static TableSchemaDiff Compute(
        DatasetRef dataset,
        TableSchema schema,
        IReadOnlyList<ExistingColumn> existing,
        IReadOnlyCollection<string> existingIndexes,
        ExistingKeys existingKeys,
        Func<ColumnType, string> storedTypeOf,
        bool compareKeys)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(existing);
        ArgumentNullException.ThrowIfNull(existingIndexes);
        ArgumentNullException.ThrowIfNull(storedTypeOf);
        ArgumentNullException.ThrowIfNull(existingKeys);

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

        var addPrimaryKey = false;
        var uniqueToAdd = new List<IReadOnlyList<string>>();
        if (compareKeys)
        {
            addPrimaryKey = CompareKeys(schema, existingKeys, conflicts, uniqueToAdd);
        }

        if (conflicts.Count > 0)
        {
            throw new TableSchemaConflictException(dataset, schema.Name, conflicts);
        }

        var indexes = schema.Indexes.Where(i => !existingIndexes.Contains(schema.IndexName(i))).ToList();
        return new TableSchemaDiff(add, relax, indexes, addPrimaryKey, uniqueToAdd);
    }

    /// <summary>Adds key conflicts to <paramref name="conflicts"/> and missing unique keys to <paramref name="uniqueToAdd"/>; true when the primary key is to be added.</summary>
    private static bool CompareKeys(TableSchema schema, ExistingKeys existingKeys, List<TableSchemaConflict> conflicts, List<IReadOnlyList<string>> uniqueToAdd)
    {
        const string Primary = "PRIMARY KEY";
        const string Unique = "UNIQUE";
        var addPrimaryKey = false;
        if (existingKeys.PrimaryKey.Count == 0)
        {
            addPrimaryKey = schema.PrimaryKey.Count > 0;
        }
        else if (schema.PrimaryKey.Count == 0)
        {
            conflicts.Add(new(string.Join(", ", existingKeys.PrimaryKey), "absent", DescribeKey(Primary, existingKeys.PrimaryKey), "the schema no longer declares this key; dropping it would change what an upsert replaces"));
        }
        else if (!schema.PrimaryKey.SequenceEqual(existingKeys.PrimaryKey, StringComparer.Ordinal))
        {
            conflicts.Add(new(string.Join(", ", schema.PrimaryKey), DescribeKey(Primary, schema.PrimaryKey), DescribeKey(Primary, existingKeys.PrimaryKey), "a key change; the table's key must be migrated by hand"));
        }

        static bool Same(IReadOnlyList<string> a, IReadOnlyList<string> b) => a.SequenceEqual(b, StringComparer.Ordinal);
        uniqueToAdd.AddRange(schema.UniqueKeys.Where(k => !existingKeys.UniqueKeys.Any(e => Same(e, k))));
        foreach (var key in existingKeys.UniqueKeys.Where(e => !schema.UniqueKeys.Any(k => Same(e, k))))
        {
            var declared = schema.UniqueKeys.Count == 0 ? "absent" : string.Join(" and ", schema.UniqueKeys.Select(k => DescribeKey(Unique, k)));
            conflicts.Add(new(string.Join(", ", key), declared, DescribeKey(Unique, key), "the schema no longer declares this key; dropping it would change what an upsert replaces"));
        }

        return addPrimaryKey;
    }

    private static string Describe(ColumnType type) => type.ToString().ToUpperInvariant();

    private static string Describe(ExistingColumn column) => $"{column.StoredType}{(column.NotNull ? " NOT NULL" : " NULL")}";
}
