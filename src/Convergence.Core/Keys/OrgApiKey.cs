using System.Security.Cryptography;
using System.Text;
using Convergence.Core.Organizations;

namespace Convergence.Core.Keys;

/// <summary>
/// An org API key in its plain form, <c>{org_slug}_api_{random}</c>, with at least
/// <see cref="MinRandomLength"/> base62 characters drawn from a CSPRNG.
/// </summary>
/// <remarks>
/// The plain key exists only in memory: it is shown once to the caller and stored as a SHA-256 hash (lookup)
/// plus a KMS-encrypted copy (recovery). <see cref="ToString"/> never prints the secret.
/// </remarks>
public sealed class OrgApiKey
{
    public const string Separator = "_api_";
    public const int MinRandomLength = 16;
    public const int GeneratedRandomLength = 32;
    public const int FingerprintLength = 4;
    private const string Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    private OrgApiKey(OrgSlug org, string secret)
    {
        Org = org;
        Secret = secret;
    }

    public OrgSlug Org { get; }

    /// <summary>The full key as the caller sends it in <c>X-API-Key</c>.</summary>
    public string Secret { get; }

    /// <summary>The last <see cref="FingerprintLength"/> characters, safe to show in lists.</summary>
    public string Fingerprint => Secret[^FingerprintLength..];

    /// <summary>SHA-256 of the full key, lowercase hex: the lookup key in <c>org_api_keys</c>.</summary>
    public string Hash => ComputeHash(Secret);

    /// <summary>Creates a new key for <paramref name="org"/> from the given random source.</summary>
    public static OrgApiKey Generate(OrgSlug org, RandomNumberGenerator? random = null)
    {
        Span<char> chars = stackalloc char[GeneratedRandomLength];
        if (random is null)
        {
            RandomNumberGenerator.GetItems(Base62, chars);
        }
        else
        {
            // Rejection sampling keeps the distribution uniform over the 62 symbols.
            Span<byte> one = stackalloc byte[1];
            for (var i = 0; i < chars.Length;)
            {
                random.GetBytes(one);
                if (one[0] < 248)
                {
                    chars[i++] = Base62[one[0] % 62];
                }
            }
        }

        return new OrgApiKey(org, string.Concat(org.Value, Separator, new string(chars)));
    }

    /// <summary>Parses a key presented by a caller; the reason is returned for malformed input.</summary>
    public static ParseResult<OrgApiKey> Parse(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return ParseResult<OrgApiKey>.Failure("The API key is empty.");
        }

        // The random part is base62, so the last separator splits slug from secret even if a slug contains "_api_".
        var at = text.LastIndexOf(Separator, StringComparison.Ordinal);
        if (at < 0)
        {
            return ParseResult<OrgApiKey>.Failure("The API key is not of the form {org_slug}_api_{random}.");
        }

        var slug = OrgSlug.Parse(text[..at]);
        if (!slug.IsSuccess)
        {
            return ParseResult<OrgApiKey>.Failure("The API key does not start with a valid org slug.");
        }

        var random = text.AsSpan(at + Separator.Length);
        if (random.Length < MinRandomLength || random.Length > 128)
        {
            return ParseResult<OrgApiKey>.Failure($"The API key's random part must be {MinRandomLength} to 128 base62 characters.");
        }

        foreach (var c in random)
        {
            if (!char.IsAsciiLetterOrDigit(c))
            {
                return ParseResult<OrgApiKey>.Failure("The API key's random part must be base62 (letters and digits).");
            }
        }

        return ParseResult<OrgApiKey>.Success(new OrgApiKey(slug.Value, text));
    }

    public static string ComputeHash(string secret)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var byteCount = Encoding.UTF8.GetByteCount(secret);
        byte[]? rented = null;
        var bytes = byteCount <= 256 ? stackalloc byte[byteCount] : (rented = new byte[byteCount]);
        Encoding.UTF8.GetBytes(secret, bytes);
        SHA256.HashData(bytes, hash);
        return Convert.ToHexStringLower(hash);
    }

    public override string ToString() => $"{Org.Value}{Separator}…{Fingerprint}";
}
