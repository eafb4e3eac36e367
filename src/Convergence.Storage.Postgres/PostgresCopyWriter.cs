using System.Buffers.Binary;
using System.Text;

namespace Convergence.Storage.Postgres;

/// <summary>
/// Encodes rows in PostgreSQL's binary COPY format into a buffer that goes to the server's copy stream whenever it
/// fills: the file header, then per row a field count and each field as a length and its binary send format
/// (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"; the types' <c>*_recv</c> functions).
/// </summary>
/// <remarks>
/// One field costs a few stores into the buffer, against a resolver lookup and a converter call per field through
/// Npgsql's importer, which made the client the slower half of a bulk load. Values use the same mapping as Npgsql:
/// timestamps as microseconds since 2000-01-01 UTC (sub-microsecond ticks dropped, earlier in time), dates as days since then, the
/// <see cref="DateTime"/>/<see cref="DateOnly"/> extremes as infinity, text as UTF-8, <c>jsonb</c> as version 1 and
/// the JSON text, <c>numeric</c> as base-10000 digits keeping the decimal's scale.
/// </remarks>
internal sealed class PostgresCopyWriter(Stream destination, int bufferSize = 1 << 16)
{
    private static ReadOnlySpan<byte> Signature => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    private const long TimestampEpochTicks = 630_822_816_000_000_000; // 2000-01-01T00:00:00Z
    private const int DateEpochDayNumber = 730_119; // DateOnly(2000, 1, 1).DayNumber

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private byte[] _buffer = new byte[Math.Max(bufferSize, 1024)];
    private int _length;

    /// <summary>The header: signature, flags (no OIDs), no extension area.</summary>
    public void WriteHeader()
    {
        Reserve(Signature.Length + 8);
        Signature.CopyTo(_buffer.AsSpan(_length));
        _length += Signature.Length;
        PutInt32(0);
        PutInt32(0);
    }

    public void StartRow(int fields)
    {
        Reserve(2);
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_length), checked((short)fields));
        _length += 2;
    }

    public void WriteNull()
    {
        Reserve(4);
        PutInt32(-1);
    }

    public void WriteInt64(long value)
    {
        Reserve(12);
        PutInt32(8);
        BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(_length), value);
        _length += 8;
    }

    public void WriteDouble(double value) => WriteInt64(BitConverter.DoubleToInt64Bits(value));

    public void WriteBool(bool value)
    {
        Reserve(5);
        PutInt32(1);
        _buffer[_length++] = value ? (byte)1 : (byte)0;
    }

    public void WriteDate(DateOnly value)
    {
        Reserve(8);
        PutInt32(4);
        PutInt32(value == DateOnly.MaxValue ? int.MaxValue : value == DateOnly.MinValue ? int.MinValue : value.DayNumber - DateEpochDayNumber);
    }

    /// <summary>A <c>timestamptz</c>: <paramref name="utc"/> is read as UTC whatever its kind.</summary>
    public void WriteTimestamp(DateTime utc)
    {
        var micros = utc == DateTime.MaxValue ? long.MaxValue : utc == DateTime.MinValue ? long.MinValue : long.DivRem(utc.Ticks - TimestampEpochTicks, 10) switch
        {
            (var q, < 0) => q - 1, // floor, so a time before 2000 loses its sub-microsecond ticks the same way as one after
            (var q, _) => q,
        };
        WriteInt64(micros);
    }

    public void WriteText(string value) => WriteString(value, jsonbVersion: false);

    public void WriteJsonb(string json) => WriteString(json, jsonbVersion: true);

    /// <summary>A <c>numeric</c>: sign, weight and display scale, then the base-10000 digits without leading or trailing zeros.</summary>
    public void WriteNumeric(decimal value)
    {
        Span<int> bits = stackalloc int[4];
        decimal.GetBits(value, bits);
        var scale = (bits[3] >> 16) & 0xFF;
        var negative = bits[3] < 0;
        var mantissa = ((UInt128)(uint)bits[2] << 64) | ((ulong)(uint)bits[1] << 32) | (uint)bits[0];

        // Base-10000 groups line up on the decimal point: scale the fraction up to a multiple of four digits.
        var pad = (4 - (scale % 4)) % 4;
        for (var i = 0; i < pad; i++)
        {
            mantissa *= 10;
        }

        var fractionGroups = (scale + pad) / 4;
        Span<short> digits = stackalloc short[10]; // least significant first; 10^40 > 2^96 * 1000
        var count = 0;
        while (mantissa > ulong.MaxValue)
        {
            digits[count++] = (short)(ulong)(mantissa % 10000);
            mantissa /= 10000;
        }

        for (var small = (ulong)mantissa; small != 0; small /= 10000)
        {
            digits[count++] = (short)(small % 10000);
        }

        var lowest = 0;
        while (lowest < count && digits[lowest] == 0)
        {
            lowest++;
        }

        var ndigits = count - lowest;
        var weight = ndigits == 0 ? 0 : count - 1 - fractionGroups;
        Reserve(4 + 8 + 2 * ndigits);
        PutInt32(8 + 2 * ndigits);
        PutInt16((short)ndigits);
        PutInt16((short)weight);
        PutInt16(negative && ndigits > 0 ? (short)0x4000 : (short)0);
        PutInt16((short)scale);
        for (var i = count - 1; i >= lowest; i--)
        {
            PutInt16(digits[i]);
        }
    }

    /// <summary>The file trailer (a field count of -1), then whatever is buffered goes to the server.</summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        Reserve(2);
        PutInt16(-1);
        await FlushAsync(cancellationToken);
    }

    /// <summary>Sends the buffer to the server once it is nearly full; called between rows.</summary>
    public async ValueTask FlushIfFullAsync(CancellationToken cancellationToken)
    {
        if (_length >= _buffer.Length - 4096)
        {
            await FlushAsync(cancellationToken);
        }
    }

    private async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_length > 0)
        {
            await destination.WriteAsync(_buffer.AsMemory(0, _length), cancellationToken);
            _length = 0;
        }
    }

    private void WriteString(string value, bool jsonbVersion)
    {
        var prefix = jsonbVersion ? 1 : 0;
        var max = Utf8.GetMaxByteCount(value.Length) + prefix;
        Reserve(4 + max);
        var start = _length;
        _length += 4;
        if (jsonbVersion)
        {
            _buffer[_length++] = 1;
        }

        var written = Utf8.GetBytes(value, _buffer.AsSpan(_length));
        _length += written;
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(start), written + prefix);
    }

    /// <summary>Makes room for <paramref name="bytes"/> more: rows are flushed between fields only when they outgrow the buffer.</summary>
    private void Reserve(int bytes)
    {
        if (_length + bytes > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + bytes));
        }
    }

    private void PutInt32(int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_length), value);
        _length += 4;
    }

    private void PutInt16(short value)
    {
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_length), value);
        _length += 2;
    }
}
