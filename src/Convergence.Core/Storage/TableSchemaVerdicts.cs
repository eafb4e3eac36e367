using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Convergence.Core.Organizations;

namespace Convergence.Core.Storage;

/// <summary>
/// An adapter instance's memory of "dataset D's table T already matches schema S", so a write after a successful check
/// or evolution skips the catalogue read <see cref="TableSchemaDiff"/> needs. Thread-safe; one per adapter instance.
/// </summary>
/// <remarks>
/// <para>Keyed by dataset, table and <see cref="Fingerprint"/> of the schema: a changed schema misses and is checked
/// again. An adapter remembers a verdict only after the check or evolution committed; a conflict is never remembered. It
/// forgets a table it drops and every table of a dataset it drops.</para>
/// <para>Another instance only ever makes a table more compatible (it adds NULLABLE columns, relaxes NOT NULL, adds
/// indexes and keys the schema declares), so a remembered "matches" stays true across instances. A table dropped or
/// altered by hand underneath is not seen: the next write fails on the database's own error until the process
/// restarts or the adapter drops the table.</para>
/// </remarks>
public sealed class TableSchemaVerdicts
{
    private readonly ConcurrentDictionary<(string Dataset, string Table), string> _matching = new();
    private long _checks;

    /// <summary>How many catalogue checks the adapter ran (a counting hook for tests and measurements).</summary>
    public long Checks => Interlocked.Read(ref _checks);

    /// <summary>True when the table was verified against this very schema and not dropped since.</summary>
    public bool Matches(DatasetRef dataset, TableSchema schema) =>
        _matching.TryGetValue((dataset.Name, schema.Name), out var fingerprint) && fingerprint == Fingerprint(schema);

    /// <summary>Counts one catalogue check; the adapter calls it as it reads the catalogue.</summary>
    public void CountCheck() => Interlocked.Increment(ref _checks);

    /// <summary>Remembers that the table matches <paramref name="schema"/>; call only after the check or evolution committed.</summary>
    public void Remember(DatasetRef dataset, TableSchema schema) => _matching[(dataset.Name, schema.Name)] = Fingerprint(schema);

    /// <summary>Forgets the verdict on one table (the adapter dropped or recreated it).</summary>
    public void Forget(DatasetRef dataset, string table) => _matching.TryRemove((dataset.Name, table), out _);

    /// <summary>Forgets the verdicts on every table of a dataset (the adapter dropped or created it).</summary>
    public void ForgetDataset(DatasetRef dataset)
    {
        foreach (var key in _matching.Keys.Where(k => k.Dataset == dataset.Name))
        {
            _matching.TryRemove(key, out _);
        }
    }

    /// <summary>
    /// A stable fingerprint of what evolution compares: the table's name, its columns (name, type, REQUIRED), primary
    /// key, unique keys and indexes, in order; descriptions do not count.
    /// </summary>
    public static string Fingerprint(TableSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var text = new StringBuilder(schema.Name).Append('\n');
        foreach (var column in schema.Columns)
        {
            text.Append(column.Name).Append(' ').Append(column.Type).Append(column.Required ? " R" : " N").Append('\n');
        }

        static void Keys(StringBuilder text, string label, IEnumerable<IReadOnlyList<string>> keys)
        {
            foreach (var key in keys)
            {
                text.Append(label).Append(' ').AppendJoin(',', key).Append('\n');
            }
        }

        Keys(text, "pk", [schema.PrimaryKey]);
        Keys(text, "uq", schema.UniqueKeys);
        Keys(text, "ix", schema.Indexes);
        Keys(text, "brin", schema.BlockRangeIndexes);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
