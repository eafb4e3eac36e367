using System.Buffers;

namespace Convergence.Processors.Gcp;

/// <summary>
/// Streams RFC 4180 records from a reader: comma-separated, fields optionally in double quotes with <c>""</c> for a
/// quote, quoted fields may span lines; <c>\n</c> and <c>\r\n</c> end records. Holds one buffer, never the file.
/// </summary>
internal sealed class CsvRecordReader(TextReader reader)
{
    private readonly char[] _buffer = new char[64 * 1024];
    private int _position;
    private int _length;
    private char[] _field = new char[256];
    private int _fieldLength;
    private long _line = 1;
    private string?[] _recent = new string?[64 * RecentPerColumn];
    private int[] _next = new int[64];

    /// <summary>Distinct texts remembered per column for <see cref="Text"/>.</summary>
    private const int RecentPerColumn = 8;

    private bool[] _raw = [];
    private char[] _rawChars = new char[512];
    private int _rawLength;
    private (int Start, int Length)[] _rawFields = [];

    /// <summary>The 1-based line the last record read starts on.</summary>
    public long RecordLine { get; private set; }

    /// <summary>Whether the last record read is a blank line (one empty field).</summary>
    public bool Blank { get; private set; }

    /// <summary>
    /// Fields of column <paramref name="column"/> (0-based) are not made strings: <see cref="Read"/> adds an empty
    /// string in their place and <see cref="RawField"/> gives their text. For columns parsed into numbers or instants,
    /// where a string per row would only be garbage.
    /// </summary>
    public void KeepRaw(int column)
    {
        if (column >= _raw.Length)
        {
            Array.Resize(ref _raw, column + 1);
            Array.Resize(ref _rawFields, column + 1);
        }

        _raw[column] = true;
    }

    /// <summary>The text of a <see cref="KeepRaw"/> column in the last record read; valid until the next read.</summary>
    public ReadOnlySpan<char> RawField(int column)
    {
        var (start, length) = _rawFields[column];
        return _rawChars.AsSpan(start, length);
    }

    /// <summary>Reads the next record into <paramref name="fields"/>; <c>false</c> at the end of the input.</summary>
    /// <exception cref="CsvFormatException">A quote in the wrong place or an unterminated quoted field.</exception>
    public bool Read(List<string> fields)
    {
        fields.Clear();
        if (!Available())
        {
            return false;
        }

        RecordLine = _line;
        _rawLength = 0;
        Array.Clear(_rawFields);
        while (true)
        {
            _fieldLength = 0;
            if (_buffer[_position] == '"')
            {
                ReadQuoted(fields.Count + 1);
            }
            else
            {
                ReadUnquoted(fields.Count + 1);
            }

            fields.Add(Text(fields.Count));
            Blank = fields.Count == 1 && _fieldLength == 0;
            if (!Available())
            {
                return true;
            }

            var c = _buffer[_position++];
            if (c == ',')
            {
                if (!Available())
                {
                    fields.Add(string.Empty);
                    Blank = false;
                    return true;
                }

                continue;
            }

            if (c == '\r' && Available() && _buffer[_position] == '\n')
            {
                _position++;
            }

            _line++;
            return true;
        }
    }

    /// <summary>
    /// The current field as a string, reusing one of the last <see cref="RecentPerColumn"/> distinct strings of the same
    /// column when the text is the same: billing exports interleave a few accounts, projects, services, SKUs, units and
    /// label sets row after row, and this saves most allocations.
    /// </summary>
    private string Text(int column)
    {
        if (_fieldLength == 0)
        {
            return string.Empty;
        }

        if (column < _raw.Length && _raw[column])
        {
            if (_rawLength + _fieldLength > _rawChars.Length)
            {
                Array.Resize(ref _rawChars, Math.Max(_rawChars.Length * 2, _rawLength + _fieldLength));
            }

            _field.AsSpan(0, _fieldLength).CopyTo(_rawChars.AsSpan(_rawLength));
            _rawFields[column] = (_rawLength, _fieldLength);
            _rawLength += _fieldLength;
            return string.Empty;
        }

        if (column >= _next.Length)
        {
            Array.Resize(ref _recent, column * 2 * RecentPerColumn);
            Array.Resize(ref _next, column * 2);
        }

        var field = _field.AsSpan(0, _fieldLength);
        var recent = _recent.AsSpan(column * RecentPerColumn, RecentPerColumn);
        foreach (var text in recent)
        {
            if (text is null)
            {
                break;
            }

            if (field.SequenceEqual(text))
            {
                return text;
            }
        }

        var added = new string(field);
        recent[_next[column]] = added;
        _next[column] = (_next[column] + 1) % RecentPerColumn;
        return added;
    }

    /// <summary>What ends an unquoted field, and a quote (an error there): one scan finds either.</summary>
    private static readonly SearchValues<char> UnquotedStops = SearchValues.Create(",\r\n\"");

    private void ReadUnquoted(int column)
    {
        while (Available())
        {
            var span = _buffer.AsSpan(_position, _length - _position);
            var end = span.IndexOfAny(UnquotedStops);
            if (end >= 0 && span[end] == '"')
            {
                throw new CsvFormatException(_line, column, "a quote inside an unquoted field; quote the whole field and double inner quotes");
            }

            if (end >= 0)
            {
                Append(span[..end]);
                _position += end;
                return;
            }

            Append(span);
            _position = _length;
        }
    }

    private void ReadQuoted(int column)
    {
        var startLine = _line;
        _position++;
        while (true)
        {
            if (!Available())
            {
                throw new CsvFormatException(startLine, column, "a quoted field is never closed");
            }

            var span = _buffer.AsSpan(_position, _length - _position);
            var stop = span.IndexOfAny('"', '\n');
            if (stop < 0)
            {
                Append(span);
                _position = _length;
                continue;
            }

            if (span[stop] == '\n')
            {
                Append(span[..(stop + 1)]);
                _position += stop + 1;
                _line++;
                continue;
            }

            Append(span[..stop]);
            _position += stop + 1;
            if (Available() && _buffer[_position] == '"')
            {
                Append("\"");
                _position++;
                continue;
            }

            if (Available() && _buffer[_position] is not (',' or '\r' or '\n'))
            {
                throw new CsvFormatException(_line, column, "text after a closing quote; double quotes inside a quoted field");
            }

            return;
        }
    }

    private void Append(ReadOnlySpan<char> text)
    {
        if (_fieldLength + text.Length > _field.Length)
        {
            Array.Resize(ref _field, Math.Max(_field.Length * 2, _fieldLength + text.Length));
        }

        text.CopyTo(_field.AsSpan(_fieldLength));
        _fieldLength += text.Length;
    }

    private bool Available()
    {
        if (_position < _length)
        {
            return true;
        }

        _length = reader.Read(_buffer, 0, _buffer.Length);
        _position = 0;
        return _length > 0;
    }
}

/// <summary>CSV that does not parse, at a 1-based line and field.</summary>
internal sealed class CsvFormatException(long line, int column, string problem) : Exception($"line {line}, field {column}: {problem}")
{
    public long Line { get; } = line;

    public int Column { get; } = column;

    public string Problem { get; } = problem;
}
