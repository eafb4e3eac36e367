using System.Security.Cryptography;
using System.Text;

namespace Convergence.Core.Keys;

/// <summary>The platform root key, compared in constant time.</summary>
public sealed class RootKey
{
    private readonly byte[] _digest;

    public RootKey(string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        _digest = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
    }

    /// <summary>
    /// Compares the presented key with the root key. Both sides are hashed first so the comparison takes the
    /// same time whatever the presented length, and <see cref="CryptographicOperations.FixedTimeEquals"/> does the rest.
    /// </summary>
    public bool Matches(string? presented)
    {
        if (presented is null)
        {
            return false;
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), digest);
        return CryptographicOperations.FixedTimeEquals(digest, _digest);
    }

    public override string ToString() => "RootKey(…)";
}
