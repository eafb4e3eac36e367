using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Convergence.Core.Kms;

/// <summary>
/// The embedded KMS: a local file of versioned 256-bit key-encryption keys and AES-256-GCM envelope encryption.
/// </summary>
/// <remarks>
/// <para>Every <see cref="EncryptAsync"/> draws a fresh data key, encrypts the plaintext with it and wraps the data
/// key with the primary key-encryption key; both layers authenticate the <see cref="KmsContext"/>.
/// The ciphertext format is <c>lkr1.{kek version}.{wrapped data key}.{encrypted payload}</c> (base64url parts,
/// each <c>nonce ‖ ciphertext ‖ tag</c>).</para>
/// <para>The key file is created with mode 0600. It is meant for development and single-machine installs;
/// production refuses it unless explicitly allowed.</para>
/// </remarks>
public sealed class LocalKeyRing : IKeyManagementService, IKeyEncryptionKeyRotation
{
    private const string FormatTag = "lkr1";
    private const int KeySize = 32;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private KeyRingFile _file;

    private LocalKeyRing(string path, KeyRingFile file, TimeProvider time)
    {
        _path = path;
        _file = file;
        _time = time;
    }

    public string Kind => "local";

    /// <summary>The path of the key file.</summary>
    public string Path => _path;

    /// <summary>The version new ciphertexts are wrapped with.</summary>
    public int PrimaryVersion => _file.Primary;

    /// <summary>Opens the key ring at <paramref name="path"/>, creating it (mode 0600) when it does not exist.</summary>
    public static LocalKeyRing OpenOrCreate(string path, TimeProvider time)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        if (!File.Exists(path))
        {
            var created = new KeyRingFile { Primary = 1, Keys = [NewKey(1, time)] };
            try
            {
                WriteNew(path, created);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process created it first; use theirs.
            }
        }

        return new LocalKeyRing(path, Read(path), time);
    }

    public Task<string> EncryptAsync(ReadOnlyMemory<byte> plaintext, KmsContext context, CancellationToken cancellationToken)
    {
        var file = _file;
        var kek = file.Find(file.Primary) ?? throw new InvalidOperationException($"Key ring {_path} has no primary key {file.Primary}.");
        var associatedData = context.ToAssociatedData();

        Span<byte> dataKey = stackalloc byte[KeySize];
        RandomNumberGenerator.Fill(dataKey);
        try
        {
            var payload = Seal(dataKey, plaintext.Span, associatedData);
            var wrapped = Seal(kek.Material, dataKey, WrapAssociatedData(associatedData, kek.Version));
            return Task.FromResult($"{FormatTag}.{kek.Version}.{Base64Url(wrapped)}.{Base64Url(payload)}");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    public Task<byte[]> DecryptAsync(string ciphertext, KmsContext context, CancellationToken cancellationToken)
    {
        var (version, wrapped, payload) = Split(ciphertext);
        var kek = _file.Find(version) ?? throw new KmsDecryptionException($"Key version {version} is not in the key ring.");
        var associatedData = context.ToAssociatedData();
        var dataKey = Open(kek.Material, wrapped, WrapAssociatedData(associatedData, version));
        try
        {
            return Task.FromResult(Open(dataKey, payload, associatedData));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    public Task<bool> IsReadyAsync(CancellationToken cancellationToken) => Task.FromResult(_file.Find(_file.Primary) is not null);

    /// <summary>
    /// Adds a new key-encryption key and makes it primary. Existing ciphertexts keep decrypting with their version;
    /// <see cref="RewrapAsync"/> moves one to the new primary without touching its data key or payload.
    /// </summary>
    public int Rotate()
    {
        lock (_gate)
        {
            var current = Read(_path);
            var next = current.Keys.Max(k => k.Version) + 1;
            var updated = new KeyRingFile { Primary = next, Keys = [.. current.Keys, NewKey(next, _time)] };
            var temp = _path + ".tmp";
            File.Delete(temp);
            WriteNew(temp, updated);
            File.Move(temp, _path, overwrite: true);
            _file = updated;
            return next;
        }
    }

    /// <summary>
    /// Re-wraps the data key of <paramref name="ciphertext"/> with the primary key-encryption key, after checking that
    /// both layers authenticate under <paramref name="context"/>; a ciphertext already on the primary is returned as is.
    /// </summary>
    public Task<string> RewrapAsync(string ciphertext, KmsContext context, CancellationToken cancellationToken)
    {
        var (version, wrapped, payload) = Split(ciphertext);
        var file = _file;
        if (version == file.Primary)
        {
            return Task.FromResult(ciphertext);
        }

        var oldKek = file.Find(version) ?? throw new KmsDecryptionException($"Key version {version} is not in the key ring.");
        var primary = file.Find(file.Primary)!;
        var associatedData = context.ToAssociatedData();
        var dataKey = Open(oldKek.Material, wrapped, WrapAssociatedData(associatedData, version));
        try
        {
            // Authenticate the payload too, so a tampered row is reported now rather than carried to the new version.
            CryptographicOperations.ZeroMemory(Open(dataKey, payload, associatedData));
            var rewrapped = Seal(primary.Material, dataKey, WrapAssociatedData(associatedData, primary.Version));
            return Task.FromResult($"{FormatTag}.{primary.Version}.{Base64Url(rewrapped)}.{Base64Url(payload)}");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    private static byte[] WrapAssociatedData(byte[] associatedData, int version)
    {
        var prefix = System.Text.Encoding.UTF8.GetBytes($"kek={version}|");
        return [.. prefix, .. associatedData];
    }

    private static byte[] Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var output = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, output.AsSpan(NonceSize, plaintext.Length), output.AsSpan(NonceSize + plaintext.Length), associatedData);
        return output;
    }

    private static byte[] Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> associatedData)
    {
        if (sealedData.Length < NonceSize + TagSize)
        {
            throw new KmsDecryptionException("The ciphertext is truncated.");
        }

        var length = sealedData.Length - NonceSize - TagSize;
        var plaintext = new byte[length];
        try
        {
            using var aes = new AesGcm(key, TagSize);
            aes.Decrypt(sealedData[..NonceSize], sealedData.Slice(NonceSize, length), sealedData[(NonceSize + length)..], plaintext, associatedData);
            return plaintext;
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new KmsDecryptionException("The ciphertext failed authentication: tampered, or bound to another org, purpose or record.", ex);
        }
    }

    private static (int Version, byte[] Wrapped, byte[] Payload) Split(string ciphertext)
    {
        var parts = ciphertext.Split('.');
        // The version must be spelled canonically ("1", not "01" or "+1"): one ciphertext, one spelling.
        if (parts.Length != 4 || parts[0] != FormatTag
            || !int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version)
            || parts[1] != version.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            throw new KmsDecryptionException("The ciphertext is not in the local key ring format.");
        }

        try
        {
            return (version, FromBase64Url(parts[2]), FromBase64Url(parts[3]));
        }
        catch (FormatException ex)
        {
            throw new KmsDecryptionException("The ciphertext is not valid base64url.", ex);
        }
    }

    private static string Base64Url(byte[] data) => System.Buffers.Text.Base64Url.EncodeToString(data);

    private static byte[] FromBase64Url(string text) => System.Buffers.Text.Base64Url.DecodeFromChars(text);

    private static KeyRingEntry NewKey(int version, TimeProvider time) =>
        new() { Version = version, CreatedAt = time.GetUtcNow(), Material = RandomNumberGenerator.GetBytes(KeySize) };

    private static void WriteNew(string path, KeyRingFile file)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        JsonSerializer.Serialize(stream, file, KeyRingJson.Default.KeyRingFile);
    }

    private static KeyRingFile Read(string path)
    {
        using var stream = File.OpenRead(path);
        KeyRingFile? file;
        try
        {
            file = JsonSerializer.Deserialize(stream, KeyRingJson.Default.KeyRingFile);
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"The key ring file {path} is not valid JSON: {ex.Message}", ex);
        }

        if (file?.Keys is null || file.Keys.Count == 0 || file.Keys.Any(k => k?.Material is not { Length: KeySize }) || file.Find(file.Primary) is null)
        {
            throw new InvalidOperationException($"The key ring file {path} is damaged: it needs 256-bit keys and a primary version that exists.");
        }

        return file;
    }

    internal sealed class KeyRingFile
    {
        [JsonPropertyName("primary")]
        public int Primary { get; set; }

        [JsonPropertyName("keys")]
        public List<KeyRingEntry> Keys { get; set; } = [];

        public KeyRingEntry? Find(int version) => Keys.Find(k => k.Version == version);
    }

    internal sealed class KeyRingEntry
    {
        [JsonPropertyName("version")]
        public int Version { get; set; }

        [JsonPropertyName("created_at")]
        public DateTimeOffset CreatedAt { get; set; }

        [JsonPropertyName("material")]
        public byte[] Material { get; set; } = [];
    }
}

[JsonSerializable(typeof(LocalKeyRing.KeyRingFile))]
[JsonSourceGenerationOptions(WriteIndented = true)]
internal sealed partial class KeyRingJson : JsonSerializerContext;
