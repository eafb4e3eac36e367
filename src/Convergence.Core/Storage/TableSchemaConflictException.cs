using Convergence.Core.Organizations;

namespace Convergence.Core.Storage;

/// <summary>One column an existing table cannot be evolved on: both definitions and why.</summary>
/// <param name="SchemaDefinition">The column in the JSON schema, such as <c>INT64 NULLABLE</c>, or <c>absent</c>.</param>
/// <param name="TableDefinition">The column in the table, such as <c>TEXT NOT NULL</c>, or <c>missing</c>.</param>
public sealed record TableSchemaConflict(string Column, string SchemaDefinition, string TableDefinition, string Reason)
{
    public override string ToString() => $"column '{Column}' is {SchemaDefinition} in the schema but {TableDefinition} in the table: {Reason}";
}

/// <summary>
/// An existing table differs from its schema in a way schema evolution does not apply; nothing was changed. The table
/// has to be migrated by hand (see the README, "Schema evolution"). An <see cref="InvalidOperationException"/>, as the
/// adapters' other refusals are.
/// </summary>
public sealed class TableSchemaConflictException(DatasetRef dataset, string table, IReadOnlyList<TableSchemaConflict> conflicts)
    : InvalidOperationException(
        $"Table {dataset.Name}.{table} cannot be brought up to its schema; nothing was changed. " +
        string.Join("; ", conflicts) + ". Migrate the table by hand (README, Schema evolution) or restore the schema.")
{
    public string Dataset { get; } = dataset.Name;

    public string Table { get; } = table;

    public IReadOnlyList<TableSchemaConflict> Conflicts { get; } = conflicts;
}
