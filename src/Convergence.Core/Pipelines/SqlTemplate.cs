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
/// qualifier and needs no identifier placeholders. Quoted text, quoted identifiers and comments are left alone:
/// <c>'{date}'</c> stays literal.
/// </remarks>
public static class SqlTemplate
{
    public static SqlQuery Bind(string sql, IReadOnlyDictionary<string, object?> values, string sourceFile, string field)
    {
        var text = new StringBuilder(sql.Length);
        var parameters = new Dictionary<string, object?>(StringComparer.Ordinal);
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];

            // Quoted text, quoted identifiers and comments are copied as they are: a brace in them is not a placeholder,
            // and an apostrophe in a comment must not be mistaken for the start of a string.
            var skipTo = c switch
            {
                '\'' or '"' => ClosingQuote(sql, i),
                '-' when At(sql, i + 1, '-') => LineEnd(sql, i),
                '/' when At(sql, i + 1, '*') => BlockCommentEnd(sql, i),
                _ => -1,
            };
            if (skipTo > i)
            {
                text.Append(sql, i, skipTo - i);
                i = skipTo;
                continue;
            }

            if (c == '{' && sql.IndexOf('}', i + 1) is var close and > 0 && SqlIdentifier.IsValid(sql[(i + 1)..close]))
            {
                var name = sql[(i + 1)..close];
                if (!values.TryGetValue(name, out var value))
                {
                    throw new ConfigurationErrorException(sourceFile, null, field, $"placeholder '{{{name}}}' cannot be resolved in SQL");
                }

                if ((i > 0 && IsWordChar(sql[i - 1])) || (close + 1 < sql.Length && IsWordChar(sql[close + 1])))
                {
                    throw new ConfigurationErrorException(
                        sourceFile, null, field, $"placeholder '{{{name}}}' is glued to other text; in SQL a placeholder is a bound value and must stand alone (tables are named without a dataset prefix)");
                }

                parameters[name] = value;
                text.Append('@').Append(name);
                i = close + 1;
                continue;
            }

            text.Append(c);
            i++;
        }

        return new SqlQuery(text.ToString(), parameters);
    }

    private static bool At(string sql, int index, char c) => index < sql.Length && sql[index] == c;

    private static bool IsWordChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '@' or '$';

    /// <summary>The index after the quote that closes the one at <paramref name="open"/> (a doubled quote escapes).</summary>
    private static int ClosingQuote(string sql, int open)
    {
        var quote = sql[open];
        for (var i = open + 1; i < sql.Length; i++)
        {
            if (sql[i] != quote)
            {
                continue;
            }

            if (At(sql, i + 1, quote))
            {
                i++;
                continue;
            }

            return i + 1;
        }

        return sql.Length;
    }

    private static int LineEnd(string sql, int start)
    {
        var newline = sql.IndexOf('\n', start);
        return newline < 0 ? sql.Length : newline;
    }

    private static int BlockCommentEnd(string sql, int start)
    {
        var end = sql.IndexOf("*/", start + 2, StringComparison.Ordinal);
        return end < 0 ? sql.Length : end + 2;
    }
}
