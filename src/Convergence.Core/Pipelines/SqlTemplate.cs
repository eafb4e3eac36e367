using System.Text;
using Convergence.Core.Configuration;
using Convergence.Core.Storage;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Turns the placeholders of a SQL text from a pipeline config into bound parameters: <c>{date}</c> becomes the
/// marker <c>@date</c> with the run's date bound to it. No value is ever spliced into SQL text.
/// </summary>
/// <remarks>
/// The warehouse runs each query with the org's dataset as its default, so SQL names tables without a dataset
/// qualifier and needs no identifier placeholders. Quoted text is left alone: <c>'{date}'</c> stays literal.
/// </remarks>
public static class SqlTemplate
{
    public static SqlQuery Bind(string sql, IReadOnlyDictionary<string, object?> values, string sourceFile, string field)
    {
        var text = new StringBuilder(sql.Length);
        var parameters = new Dictionary<string, object?>(StringComparer.Ordinal);
        var inQuote = false;
        for (var i = 0; i < sql.Length; i++)
        {
            var c = sql[i];
            if (c == '\'')
            {
                inQuote = !inQuote;
            }
            else if (c == '{' && !inQuote)
            {
                var close = sql.IndexOf('}', i + 1);
                var name = close < 0 ? null : sql[(i + 1)..close];
                if (name is not null && SqlIdentifier.IsValid(name))
                {
                    if (!values.TryGetValue(name, out var value))
                    {
                        throw new ConfigurationErrorException(sourceFile, null, field, $"placeholder '{{{name}}}' cannot be resolved in SQL");
                    }

                    parameters[name] = value;
                    text.Append('@').Append(name);
                    i = close;
                    continue;
                }
            }

            text.Append(c);
        }

        return new SqlQuery(text.ToString(), parameters);
    }
}
