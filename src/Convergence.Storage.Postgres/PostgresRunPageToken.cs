using System.Globalization;
using System.Text;

namespace Convergence.Storage.Postgres;

/// <summary>
/// Opaque keyset page tokens: base64url of "ticks|pipeline_logging_id" of the last row served, where ticks are the UTC
/// ticks of its <c>created_at</c>. PostgreSQL keeps microseconds, a whole number of ticks, so the key round-trips exactly.
/// </summary>
internal static class PostgresRunPageToken
{
    public static string Encode(DateTime createdAt, string id) =>
        System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(
            string.Create(CultureInfo.InvariantCulture, $"{PostgresValues.FromTimestamp(createdAt).UtcTicks}|{id}")));

    public static (DateTime? CreatedAt, string? Id) Decode(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return (null, null);
        }

        try
        {
            var text = Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(token));
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            if (bar > 0
                && long.TryParse(text.AsSpan(0, bar), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
                && ticks <= DateTime.MaxValue.Ticks)
            {
                return (new DateTime(ticks, DateTimeKind.Utc), text[(bar + 1)..]);
            }
        }
        catch (FormatException)
        {
        }

        throw new Core.Errors.RequestValidationException(new Dictionary<string, string[]> { ["page_token"] = ["is not a token this API returned."] });
    }
}
