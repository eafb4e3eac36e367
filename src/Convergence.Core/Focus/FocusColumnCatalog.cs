using System.Text;
using Convergence.Core.Configuration;

namespace Convergence.Core.Focus;

/// <summary>
/// The FOCUS columns of one specification version, read from <c>configs/focus/focus_v1.2_columns.csv</c> (one row per
/// column: id, display name, type, feature level, nullability, data type, value format, presence rule, description).
/// </summary>
public sealed class FocusColumnCatalog
{
    /// <summary>The catalog file's path under the configs folder.</summary>
    public const string RelativePath = "focus/focus_v1.2_columns.csv";

    private static readonly string[] Header =
        ["ColumnId", "DisplayName", "ColumnType", "FeatureLevel", "AllowsNulls", "DataType", "ValueFormat", "Introduced", "PresenceRule", "Description"];

    private static readonly HashSet<string> FeatureLevels = new(["Mandatory", "Conditional", "Recommended"], StringComparer.Ordinal);

    private readonly Dictionary<string, FocusColumn> _byId;

    private FocusColumnCatalog(IReadOnlyList<FocusColumn> columns)
    {
        Columns = columns;
        _byId = columns.ToDictionary(c => c.Id, StringComparer.Ordinal);
    }

    public IReadOnlyList<FocusColumn> Columns { get; }

    public IEnumerable<FocusColumn> Mandatory => Columns.Where(c => c.IsMandatory);

    /// <summary>The column named <paramref name="id"/>.</summary>
    /// <exception cref="KeyNotFoundException">The catalog has no such column.</exception>
    public FocusColumn Get(string id) =>
        _byId.TryGetValue(id, out var column)
            ? column
            : throw new KeyNotFoundException($"FOCUS column '{id}' is not in the catalog; check the spelling against {RelativePath}.");

    public bool TryGet(string id, out FocusColumn column) => _byId.TryGetValue(id, out column!);

    /// <summary>Reads and checks a catalog file.</summary>
    /// <exception cref="ConfigurationErrorException">The file is malformed; the message names line and field.</exception>
    public static FocusColumnCatalog Load(string path)
    {
        var rows = CsvText.Parse(File.ReadAllText(path, Encoding.UTF8));
        if (rows.Count == 0 || !rows[0].SequenceEqual(Header))
        {
            throw new ConfigurationErrorException(path, 1, null, $"the header must be: {string.Join(",", Header)}");
        }

        var columns = new List<FocusColumn>(rows.Count - 1);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 1; i < rows.Count; i++)
        {
            var cells = rows[i];
            var line = i + 1;
            if (cells.Count != Header.Length)
            {
                throw new ConfigurationErrorException(path, line, null, $"expected {Header.Length} fields, found {cells.Count}");
            }

            if (!FeatureLevels.Contains(cells[3]))
            {
                throw new ConfigurationErrorException(path, line, "FeatureLevel", $"'{cells[3]}' is not Mandatory, Conditional or Recommended");
            }

            if (cells[4] is not ("True" or "False"))
            {
                throw new ConfigurationErrorException(path, line, "AllowsNulls", $"'{cells[4]}' is not True or False");
            }

            if (cells[0].Length == 0 || !seen.Add(cells[0]))
            {
                throw new ConfigurationErrorException(path, line, "ColumnId", $"'{cells[0]}' is empty or listed twice");
            }

            columns.Add(new FocusColumn(cells[0], cells[1], cells[2], cells[3], cells[4] == "True", cells[5], cells[6], cells[7], cells[8], cells[9]));
        }

        return new FocusColumnCatalog(columns);
    }
}
