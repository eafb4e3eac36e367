using System.Security.Cryptography;
using System.Text;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Secrets handed to one run in memory only — never into its parameters, resolved config, step metadata, logs or the
/// run-log tables. Integration setup passes the tenant's credential this way; a step that decrypts a stored credential
/// puts it here for the next step. Disposing wipes the bytes.
/// </summary>
public sealed class RunSecrets : IDisposable
{
    /// <summary>The slot of the provider credential being set up or checked.</summary>
    public const string Credential = "credential";

    private readonly Dictionary<string, byte[]> _values = new(StringComparer.Ordinal);

    public static RunSecrets With(string name, string value)
    {
        var secrets = new RunSecrets();
        secrets.Set(name, Encoding.UTF8.GetBytes(value));
        return secrets;
    }

    public bool Contains(string name)
    {
        lock (_values)
        {
            return _values.ContainsKey(name);
        }
    }

    /// <summary>Stores a copy of <paramref name="value"/> under <paramref name="name"/>, wiping what was there.</summary>
    public void Set(string name, ReadOnlySpan<byte> value)
    {
        lock (_values)
        {
            if (_values.TryGetValue(name, out var old))
            {
                CryptographicOperations.ZeroMemory(old);
            }

            _values[name] = value.ToArray();
        }
    }

    public byte[] RequireBytes(string name)
    {
        lock (_values)
        {
            return _values.TryGetValue(name, out var value)
                ? value
                : throw new InvalidOperationException($"The run has no secret '{name}'; a step that provides it must run first.");
        }
    }

    public string RequireText(string name) => Encoding.UTF8.GetString(RequireBytes(name));

    public void Dispose()
    {
        lock (_values)
        {
            foreach (var value in _values.Values)
            {
                CryptographicOperations.ZeroMemory(value);
            }

            _values.Clear();
        }
    }

    /// <summary>Names only, never values.</summary>
    public override string ToString()
    {
        lock (_values)
        {
            return $"RunSecrets [{string.Join(", ", _values.Keys)}]";
        }
    }
}
