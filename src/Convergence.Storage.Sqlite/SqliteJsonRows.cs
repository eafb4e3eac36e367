using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Convergence.Storage.Sqlite;

/// <summary>
/// A batch of rows bound as one JSON parameter and read back with <c>json_each</c>, so one statement writes or matches
/// the whole batch: SQLite's per-row work stays, Microsoft.Data.Sqlite's per-statement binding and stepping go.
/// </summary>
/// <remarks>
/// Each row is a JSON array; <see cref="Columns"/> reads its values by position (<c>j.value -&gt;&gt; 0</c>, ...), which
/// gives back text, integers and NULL as they were written. Only those types are accepted: a decimal or double would
/// come back as SQLite REAL and lose precision, so callers store them as text.
/// </remarks>
internal static class SqliteJsonRows
{
    /// <summary>The select list reading the first <paramref name="count"/> values of each row of <c>json_each(...) AS j</c>.</summary>
    public static string Columns(int count) =>
        string.Join(", ", Enumerable.Range(0, count).Select(i => "j.value ->> " + i.ToString(CultureInfo.InvariantCulture)));

    /// <summary>The rows as one JSON array of arrays.</summary>
    public static string Serialize(IEnumerable<IReadOnlyList<object?>> rows)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var row in rows)
            {
                writer.WriteStartArray();
                foreach (var value in row)
                {
                    Write(writer, value);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Plain values as one JSON array (read with <c>SELECT value FROM json_each(...)</c>).</summary>
    public static string SerializeValues(IEnumerable<string> values)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var value in values)
            {
                writer.WriteStringValue(value);
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void Write(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null or DBNull:
                writer.WriteNullValue();
                break;
            case string text:
                writer.WriteStringValue(text);
                break;
            case int number:
                writer.WriteNumberValue(number);
                break;
            case long number:
                writer.WriteNumberValue(number);
                break;
            case bool flag:
                writer.WriteNumberValue(flag ? 1 : 0);
                break;
            case IReadOnlyDictionary<string, string> map:
                // A nested JSON object: read it with j.value -> n, which gives its JSON text.
                writer.WriteStartObject();
                foreach (var (key, text) in map)
                {
                    writer.WriteString(key, text);
                }

                writer.WriteEndObject();
                break;
            default:
                throw new ArgumentException($"A {value.GetType().Name} cannot be passed through json_each without losing its type; store it as text.", nameof(value));
        }
    }
}
