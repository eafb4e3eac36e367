using System.Text.RegularExpressions;
using Convergence.Core.Errors;

namespace Convergence.Processors.Gcp.BigQuery;

/// <summary>
/// Table names in a tenant's BigQuery SQL. Query parameters cannot stand for identifiers, so a placeholder written
/// inside back-quotes — <c>`{table}`</c> — is an identifier: its value (a run parameter) must be a table path
/// <c>project.dataset.table</c> matching <see cref="IsTablePath"/> and is inserted back-quoted. Every other placeholder
/// is a bound <c>@parameter</c>.
/// </summary>
internal static partial class BigQueryIdentifiers
{
    public const string TablePathRule =
        "must be a BigQuery table as project.dataset.table: a project id of 6 to 30 lowercase letters, digits and hyphens starting with a letter, then dataset and table names of letters, digits and underscores";

    /// <summary>A project id: 6–30 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen.</summary>
    public static bool IsProjectId(string? text) => text is not null && ProjectId().IsMatch(text);

    /// <summary><c>project.dataset.table</c> with a project id, and dataset and table names of letters, digits and underscores.</summary>
    public static bool IsTablePath(string? text) => text is not null && TablePath().IsMatch(text);

    /// <summary>The names of the back-quoted placeholders in <paramref name="sql"/>, in order of appearance.</summary>
    public static IEnumerable<string> Placeholders(string sql) => QuotedPlaceholder().Matches(sql).Select(m => m.Groups[1].Value).Distinct(StringComparer.Ordinal);

    /// <summary>Checks the request's values of <paramref name="sql"/>'s back-quoted placeholders; a 422 naming the parameter.</summary>
    public static void ValidateParameters(string sql, IReadOnlyDictionary<string, string> parameters)
    {
        foreach (var name in Placeholders(sql))
        {
            if (!parameters.TryGetValue(name, out var value) || string.IsNullOrEmpty(value))
            {
                throw RequestValidationException.For(name, $"is required: the BigQuery table to read; it {TablePathRule}.");
            }

            if (!IsTablePath(value))
            {
                throw RequestValidationException.For(name, $"'{Clip(value)}' {TablePathRule}.");
            }
        }
    }

    /// <summary>
    /// <paramref name="sql"/> with each back-quoted placeholder replaced by its value from <paramref name="values"/>,
    /// validated and back-quoted; anything else is left for <see cref="Core.Pipelines.SqlTemplate"/> to bind.
    /// </summary>
    /// <exception cref="RequestValidationException">A value is missing or not a table path; names the placeholder.</exception>
    public static string Substitute(string sql, IReadOnlyDictionary<string, object?> values) =>
        QuotedPlaceholder().Replace(sql, match =>
        {
            var name = match.Groups[1].Value;
            var value = values.TryGetValue(name, out var v) ? v as string : null;
            return IsTablePath(value)
                ? $"`{value}`"
                : throw RequestValidationException.For(name, value is null ? $"is required: the BigQuery table to read; it {TablePathRule}." : $"'{Clip(value)}' {TablePathRule}.");
        });

    private static string Clip(string text) => text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 80), "…");

    [GeneratedRegex(@"`\{([A-Za-z_][A-Za-z0-9_]*)\}`", RegexOptions.CultureInvariant)]
    private static partial Regex QuotedPlaceholder();

    [GeneratedRegex(@"\A[a-z][a-z0-9-]{4,28}[a-z0-9]\z", RegexOptions.CultureInvariant)]
    private static partial Regex ProjectId();

    [GeneratedRegex(@"\A[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_]{1,1024}\z", RegexOptions.CultureInvariant)]
    private static partial Regex TablePath();
}
