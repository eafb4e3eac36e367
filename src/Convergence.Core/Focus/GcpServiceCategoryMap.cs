using System.Text;
using Convergence.Core.Configuration;

namespace Convergence.Core.Focus;

/// <summary>
/// GCP service description → FOCUS ServiceCategory, read from <c>configs/focus/gcp_category_mapping.csv</c>
/// (<c>ConsumedService,ServiceCategory</c>). A service the file does not list is "Other".
/// </summary>
public sealed class GcpServiceCategoryMap
{
    public const string RelativePath = "focus/gcp_category_mapping.csv";

    private readonly Dictionary<string, string> _categories;

    private GcpServiceCategoryMap(Dictionary<string, string> categories) => _categories = categories;

    public int Count => _categories.Count;

    /// <summary>The category of <paramref name="serviceDescription"/> (compared case-insensitively), else "Other".</summary>
    public string Category(string serviceDescription) =>
        _categories.TryGetValue(serviceDescription, out var category) ? category : "Other";

    /// <exception cref="ConfigurationErrorException">A row is malformed or names a category FOCUS does not allow.</exception>
    public static GcpServiceCategoryMap Load(string path)
    {
        var rows = CsvText.Parse(File.ReadAllText(path, Encoding.UTF8));
        if (rows.Count == 0 || !rows[0].SequenceEqual(["ConsumedService", "ServiceCategory"]))
        {
            throw new ConfigurationErrorException(path, 1, null, "the header must be: ConsumedService,ServiceCategory");
        }

        var categories = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 1; i < rows.Count; i++)
        {
            var cells = rows[i];
            if (cells.Count != 2 || cells[0].Length == 0)
            {
                throw new ConfigurationErrorException(path, i + 1, null, "expected a service description and a category");
            }

            if (!FocusAllowedValues.ServiceCategory.Contains(cells[1]))
            {
                throw new ConfigurationErrorException(path, i + 1, "ServiceCategory", $"'{cells[1]}' is not a FOCUS ServiceCategory");
            }

            if (!categories.TryAdd(cells[0], cells[1]))
            {
                throw new ConfigurationErrorException(path, i + 1, "ConsumedService", $"'{cells[0]}' is listed twice");
            }
        }

        return new GcpServiceCategoryMap(categories);
    }
}
