using System.Text;

namespace Convergence.Storage.Sqlite;

/// <summary>Opaque keyset page tokens: base64url of "created_at|pipeline_logging_id" of the last row served.</summary>
internal static class RunPageToken
{
    public static string Encode(string createdAt, string id) => System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{createdAt}|{id}"));

    public static (string? CreatedAt, string? Id) Decode(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return (null, null);
        }

        try
        {
            var text = Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(token));
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            if (bar > 0)
            {
                return (text[..bar], text[(bar + 1)..]);
            }
        }
        catch (FormatException)
        {
        }

        throw new Core.Errors.RequestValidationException(new Dictionary<string, string[]> { ["page_token"] = ["is not a token this API returned."] });
    }
}
