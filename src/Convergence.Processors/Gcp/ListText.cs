using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Convergence.Processors.Gcp;

/// <summary>
/// Parses the list text of a flattened GCP billing export's repeated columns (<c>credits</c>, <c>labels</c>,
/// <c>system_labels</c>, <c>project.labels</c>): Python literal syntax such as
/// <c>[{'name': 'FreeTrial', 'amount': -5e-06, 'full_name': None}]</c>, and the JSON a BigQuery export writes for the
/// same arrays. Numbers become exact decimals, never doubles.
/// </summary>
/// <remarks>
/// Accepted: lists (<c>[]</c>, <c>()</c>), dicts with string keys, strings in single or double quotes with backslash
/// escapes, integers and decimals with exponents, <c>None</c>/<c>null</c>, <c>True</c>/<c>true</c>,
/// <c>False</c>/<c>false</c>, and <c>Decimal('…')</c>. Anything else is a <see cref="ListTextException"/> naming the
/// character offset.
/// </remarks>
internal sealed class ListText
{
    private readonly string _text;
    private int _at;

    private ListText(string text) => _text = text;

    /// <summary>An ordered dict of the text (keys as written).</summary>
    internal sealed class Dict : List<KeyValuePair<string, object?>>
    {
        public object? this[string key] => this.FirstOrDefault(kv => kv.Key == key).Value;

        public bool Has(string key) => this.Any(kv => kv.Key == key);
    }

    /// <summary>Parses one value: a <see cref="List{T}"/> of values, a <see cref="Dict"/>, a string, a decimal, a bool or null.</summary>
    public static object? Parse(string text)
    {
        var parser = new ListText(text);
        parser.SkipSpace();
        var value = parser.Value(0);
        parser.SkipSpace();
        if (parser._at != text.Length)
        {
            throw parser.Error("unexpected text after the value");
        }

        return value;
    }

    /// <summary>
    /// The credits of one export row as a JSON array of objects, and the sum of their <c>amount</c>s. Empty text is no
    /// credits.
    /// </summary>
    public static (string Json, decimal Total) Credits(string? text)
    {
        if (IsEmptyList(text))
        {
            return ("[]", 0m);
        }

        // The common case goes straight from text to JSON, summing while it writes: no lists, dicts or strings per
        // credit. Anything it does not expect (not a list of dicts each with a numeric amount) is left to the general
        // path below, which names the problem; syntax errors are the same on both paths (same grammar, same order).
        var parser = new ListText(text!);
        if (parser.TryWriteCredits(out var json, out var sum))
        {
            return (json, sum);
        }

        return CreditsFromTree(text!);
    }

    /// <summary>The credits through the parsed tree (<see cref="Parse"/>): the reference for <see cref="TryWriteCredits"/>.</summary>
    internal static (string Json, decimal Total) CreditsFromTree(string text)
    {
        if (Parse(text) is not List<object?> items)
        {
            throw new ListTextException(0, "credits must be a list");
        }

        var total = 0m;
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is not Dict credit)
            {
                throw new ListTextException(0, $"credit {i + 1} is not a dict");
            }

            total += credit["amount"] switch
            {
                decimal amount => amount,
                null when !credit.Has("amount") => throw new ListTextException(0, $"credit {i + 1} has no amount"),
                var other => throw new ListTextException(0, $"credit {i + 1} has amount {Describe(other)}, not a number"),
            };
        }

        return (ToJson(items), total);
    }

    /// <summary>
    /// Labels as a JSON object from key → value. The export's <c>[{'key': k, 'value': v}, …]</c> and a plain dict are
    /// both accepted; a later duplicate key wins, as in BigQuery's label maps.
    /// </summary>
    public static string Labels(string? text)
    {
        if (IsEmptyList(text))
        {
            return "{}";
        }

        var parsed = Parse(text!);
        var labels = new Dict();
        switch (parsed)
        {
            case Dict dict:
                labels = dict;
                break;
            case List<object?> items:
                for (var i = 0; i < items.Count; i++)
                {
                    if (items[i] is not Dict pair || pair["key"] is not string key)
                    {
                        throw new ListTextException(0, $"label {i + 1} is not a dict with a string 'key'");
                    }

                    labels.RemoveAll(kv => kv.Key == key);
                    labels.Add(new(key, pair["value"]));
                }

                break;
            default:
                throw new ListTextException(0, "labels must be a list of {'key': …, 'value': …} dicts");
        }

        return ToJson(labels);
    }

    /// <summary>The buffer and writer of <see cref="ToJson"/> on this thread, reused: an export converts credits row after row.</summary>
    [ThreadStatic]
    private static (ArrayBufferWriter<byte> Buffer, Utf8JsonWriter Writer)? _json;

    /// <summary>This thread's JSON buffer and writer, emptied.</summary>
    private static (ArrayBufferWriter<byte> Buffer, Utf8JsonWriter Writer) JsonWriter()
    {
        if (_json is not var (buffer, writer))
        {
            buffer = new ArrayBufferWriter<byte>(256);
            writer = new Utf8JsonWriter(buffer);
            _json = (buffer, writer);
        }

        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        return (buffer, writer);
    }

    /// <summary>Writes a parsed value as JSON (decimals exactly as parsed).</summary>
    public static string ToJson(object? value)
    {
        var (buffer, writer) = JsonWriter();
        Write(writer, value);
        writer.Flush();
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// Writes the whole text, a list of dicts, as JSON while summing each dict's first <c>amount</c>; <c>false</c> (and
    /// nothing usable) when the text is valid but not that shape. Syntax errors throw as <see cref="Parse"/> would.
    /// </summary>
    private bool TryWriteCredits(out string json, out decimal total)
    {
        json = string.Empty;
        total = 0m;
        var (buffer, writer) = JsonWriter();
        SkipSpace();
        if (_at >= _text.Length || _text[_at] is not ('[' or '('))
        {
            return false;
        }

        var close = _text[_at] == '[' ? ']' : ')';
        _at++;
        writer.WriteStartArray();
        SkipSpace();
        while (true)
        {
            if (_at < _text.Length && _text[_at] == close)
            {
                _at++;
                break;
            }

            if (_at >= _text.Length || _text[_at] != '{')
            {
                return false;
            }

            // One credit: a mapping written as it is read, its first 'amount' kept.
            _at++;
            writer.WriteStartObject();
            decimal? amount = null;
            var hasAmount = false;
            SkipSpace();
            while (true)
            {
                if (_at < _text.Length && _text[_at] == '}')
                {
                    _at++;
                    break;
                }

                if (_at >= _text.Length || _text[_at] is not ('\'' or '"'))
                {
                    throw Error("expected a quoted key");
                }

                var isAmount = WriteQuoted(writer, propertyName: true) && !hasAmount;
                SkipSpace();
                Expect(':');
                SkipSpace();
                var value = WriteValue(writer, 2);
                if (isAmount)
                {
                    hasAmount = true;
                    amount = value;
                }

                AfterItem('}');
            }

            writer.WriteEndObject();
            if (amount is not { } credited)
            {
                return false;
            }

            total += credited;
            AfterItem(close);
        }

        SkipSpace();
        if (_at != _text.Length)
        {
            throw Error("unexpected text after the value");
        }

        writer.WriteEndArray();
        writer.Flush();
        json = Encoding.UTF8.GetString(buffer.WrittenSpan);
        return true;
    }

    /// <summary>
    /// Writes one value as JSON straight from the text, as <see cref="Value"/> reads it; returns the number when the
    /// value is one (a plain number or <c>Decimal('…')</c>), else <c>null</c>.
    /// </summary>
    private decimal? WriteValue(Utf8JsonWriter writer, int depth)
    {
        if (depth > MaxDepth)
        {
            throw Error($"nesting deeper than {MaxDepth}");
        }

        if (_at >= _text.Length)
        {
            throw Error("unexpected end of text");
        }

        switch (_text[_at])
        {
            case '[' or '(' or '{':
                // Nested lists and dicts inside a credit are rare: through the tree.
                Write(writer, Value(depth));
                return null;
            case '\'' or '"':
                WriteQuoted(writer, propertyName: false);
                return null;
            case '-' or '+' or '.' or (>= '0' and <= '9'):
                var number = Number();
                writer.WriteNumberValue(number);
                return number;
        }

        var value = Value(depth);
        Write(writer, value);
        return value as decimal?;
    }

    /// <summary>Writes a quoted string as a JSON string or property name; returns whether it is <c>amount</c>.</summary>
    private bool WriteQuoted(Utf8JsonWriter writer, bool propertyName)
    {
        var quote = _text[_at];
        var start = _at + 1;
        var end = _text.AsSpan(start).IndexOfAny(quote, '\\');
        ReadOnlySpan<char> text;
        if (end >= 0 && _text[start + end] == quote)
        {
            text = _text.AsSpan(start, end);
            _at = start + end + 1;
        }
        else
        {
            text = QuotedString();
        }

        if (propertyName)
        {
            writer.WritePropertyName(text);
        }
        else
        {
            writer.WriteStringValue(text);
        }

        return text.SequenceEqual("amount");
    }

    private static bool IsEmptyList(string? text) => text is null || text.Length == 0 || text == "[]" || text.AsSpan().Trim().SequenceEqual("[]");

    private static void Write(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case decimal d:
                writer.WriteNumberValue(d);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case Dict dict:
                writer.WriteStartObject();
                foreach (var (key, item) in dict)
                {
                    writer.WritePropertyName(key);
                    Write(writer, item);
                }

                writer.WriteEndObject();
                break;
            case List<object?> list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                throw new ArgumentException($"Cannot write a {value.GetType().Name}.", nameof(value));
        }
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        _ => value.GetType().Name,
    };

    private const int MaxDepth = 32;

    private object? Value(int depth)
    {
        if (depth > MaxDepth)
        {
            throw Error($"nesting deeper than {MaxDepth}");
        }

        if (_at >= _text.Length)
        {
            throw Error("unexpected end of text");
        }

        var c = _text[_at];
        switch (c)
        {
            case '[':
                return Sequence(']', depth);
            case '(':
                return Sequence(')', depth);
            case '{':
                return Mapping(depth);
            case '\'' or '"':
                return QuotedString();
            case '-' or '+' or '.' or (>= '0' and <= '9'):
                return Number();
        }

        if (char.IsAsciiLetter(c))
        {
            var start = _at;
            while (_at < _text.Length && (char.IsAsciiLetterOrDigit(_text[_at]) || _text[_at] == '_'))
            {
                _at++;
            }

            var word = _text.AsSpan(start, _at - start);
            switch (word)
            {
                case "None" or "null":
                    return null;
                case "True" or "true":
                    return true;
                case "False" or "false":
                    return false;
                case "Decimal":
                    Expect('(');
                    SkipSpace();
                    var inner = _at < _text.Length && _text[_at] is '\'' or '"' ? QuotedString() : null;
                    SkipSpace();
                    Expect(')');
                    return inner is not null && TryDecimal(inner, out var d) ? d : throw Error("Decimal(…) needs a quoted number");
            }

            _at = start;
            throw Error($"unknown word '{word}'");
        }

        throw Error($"unexpected '{c}'");
    }

    private List<object?> Sequence(char close, int depth)
    {
        _at++;
        var items = new List<object?>();
        SkipSpace();
        while (true)
        {
            if (_at < _text.Length && _text[_at] == close)
            {
                _at++;
                return items;
            }

            items.Add(Value(depth + 1));
            AfterItem(close);
        }
    }

    private Dict Mapping(int depth)
    {
        _at++;
        var dict = new Dict();
        SkipSpace();
        while (true)
        {
            if (_at < _text.Length && _text[_at] == '}')
            {
                _at++;
                return dict;
            }

            if (_at >= _text.Length || _text[_at] is not ('\'' or '"'))
            {
                throw Error("expected a quoted key");
            }

            var key = QuotedString();
            SkipSpace();
            Expect(':');
            SkipSpace();
            dict.Add(new(key, Value(depth + 1)));
            AfterItem('}');
        }
    }

    private string QuotedString()
    {
        var quote = _text[_at++];
        var start = _at;
        var end = _text.IndexOfAny([quote, '\\'], start);
        if (end >= 0 && _text[end] == quote)
        {
            // The common case: no escapes.
            _at = end + 1;
            return _text.Substring(start, end - start);
        }

        var text = new StringBuilder();
        while (true)
        {
            if (_at >= _text.Length)
            {
                throw Error("unterminated string");
            }

            var c = _text[_at++];
            if (c == quote)
            {
                return text.ToString();
            }

            if (c != '\\')
            {
                text.Append(c);
                continue;
            }

            if (_at >= _text.Length)
            {
                throw Error("unterminated escape");
            }

            var e = _text[_at++];
            switch (e)
            {
                case '\\' or '\'' or '"' or '/':
                    text.Append(e);
                    break;
                case 'n':
                    text.Append('\n');
                    break;
                case 't':
                    text.Append('\t');
                    break;
                case 'r':
                    text.Append('\r');
                    break;
                case 'b':
                    text.Append('\b');
                    break;
                case 'f':
                    text.Append('\f');
                    break;
                case '0':
                    text.Append('\0');
                    break;
                case 'x':
                    text.Append((char)Hex(2));
                    break;
                case 'u':
                    text.Append((char)Hex(4));
                    break;
                case 'U':
                    text.Append(char.ConvertFromUtf32(Hex(8)));
                    break;
                default:
                    throw Error($"unknown escape '\\{e}'");
            }
        }
    }

    private int Hex(int digits)
    {
        if (_at + digits > _text.Length || !int.TryParse(_text.AsSpan(_at, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
        {
            throw Error($"expected {digits} hex digits");
        }

        if (digits == 8 && (value is < 0 or > 0x10FFFF || value is >= 0xD800 and <= 0xDFFF))
        {
            throw Error("not a Unicode code point");
        }

        _at += digits;
        return value;
    }

    private decimal Number()
    {
        var start = _at;
        while (_at < _text.Length && _text[_at] is '-' or '+' or '.' or 'e' or 'E' or (>= '0' and <= '9'))
        {
            _at++;
        }

        if (TryDecimal(_text.AsSpan(start, _at - start), out var value))
        {
            return value;
        }

        _at = start;
        throw Error($"'{_text.Substring(start, Math.Min(20, _text.Length - start))}' is not a decimal number");
    }

    /// <summary>Parses invariant decimal text with an optional exponent, exactly.</summary>
    public static bool TryDecimal(ReadOnlySpan<char> text, out decimal value) =>
        TryPlainDecimal(text, out value)
        || decimal.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out value);

    /// <summary>
    /// The common shape of export amounts, <c>-?digits(.digits)?</c> with at most 19 digits and not negative zero, as
    /// <see cref="decimal.TryParse(ReadOnlySpan{char}, NumberStyles, IFormatProvider?, out decimal)"/> reads it (the same
    /// value and scale, trailing zeros kept) without its general number parser; false for anything else, which
    /// <see cref="TryDecimal"/> leaves to that parser.
    /// </summary>
    internal static bool TryPlainDecimal(ReadOnlySpan<char> text, out decimal value)
    {
        value = 0m;
        var negative = text.Length > 0 && text[0] == '-';
        var i = negative ? 1 : 0;
        ulong mantissa = 0;
        int digits = 0, scale = -1;
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '.' && scale < 0 && digits > 0)
            {
                scale = 0;
                continue;
            }

            var digit = (uint)(c - '0');
            if (digit > 9 || ++digits > 19)
            {
                return false;
            }

            mantissa = (mantissa * 10) + digit;
            if (scale >= 0)
            {
                scale++;
            }
        }

        if (digits == 0 || scale == 0 || (negative && mantissa == 0))
        {
            return false;
        }

        value = new decimal((int)(uint)mantissa, (int)(uint)(mantissa >> 32), 0, negative, (byte)Math.Max(scale, 0));
        return true;
    }

    private void Expect(char c)
    {
        if (_at >= _text.Length || _text[_at] != c)
        {
            throw Error($"expected '{c}'");
        }

        _at++;
    }


    /// <summary>After an item of a list or mapping: skips a ',' (and the spaces around it) or stops before <paramref name="close"/>; anything else is an error.</summary>
    private void AfterItem(char close)
    {
        SkipSpace();
        if (_at < _text.Length && _text[_at] == ',')
        {
            _at++;
            SkipSpace();
            return;
        }

        if (_at >= _text.Length || _text[_at] != close)
        {
            throw Error($"expected ',' or '{close}'");
        }
    }
    private void SkipSpace()
    {
        while (_at < _text.Length && _text[_at] is ' ' or '\t' or '\n' or '\r')
        {
            _at++;
        }
    }

    private ListTextException Error(string problem) => new(_at, problem);
}

/// <summary>List text that does not parse; <see cref="Offset"/> is the 0-based character where it went wrong.</summary>
internal sealed class ListTextException(int offset, string problem) : Exception($"{problem} (at character {offset + 1})")
{
    public int Offset { get; } = offset;

    public string Problem { get; } = problem;
}
