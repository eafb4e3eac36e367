using System.Buffers.Text;
using System.Text;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.Core.Tests.TestSupport;

namespace Convergence.Core.Tests.Kms;

public sealed class LocalKeyRingTests : IDisposable
{
    private static readonly OrgSlug Acme = OrgSlug.From("acme");
    private static readonly KmsContext Context = new(Acme, "org_api_key", "key-1");
    private static readonly byte[] Plaintext = Encoding.UTF8.GetBytes("acme_api_0123456789abcdefghijklmnopqrstuv");

    private readonly TempDirectory _temp = new();

    private string KeyFile => _temp.Combine("kms", "keyring.json");

    public void Dispose() => _temp.Dispose();

    private LocalKeyRing Open() => LocalKeyRing.OpenOrCreate(KeyFile, TimeProvider.System);

    [Fact]
    public void OpenOrCreate_MissingFile_CreatesFileWithMode0600()
    {
        var ring = Open();

        File.Exists(KeyFile).ShouldBeTrue();
        ring.Path.ShouldBe(KeyFile);
        ring.PrimaryVersion.ShouldBe(1);
        ring.Kind.ShouldBe("local");
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(KeyFile).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    [Fact]
    public async Task IsReadyAsync_NewRing_ReturnsTrue()
    {
        (await Open().IsReadyAsync(CancellationToken.None)).ShouldBeTrue();
    }

    [Fact]
    public async Task EncryptAsync_ThenDecryptAsync_RoundtripsPlaintext()
    {
        var ring = Open();

        var ciphertext = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        var decrypted = await ring.DecryptAsync(ciphertext, Context, CancellationToken.None);

        decrypted.ShouldBe(Plaintext);
        ciphertext.ShouldNotContain("acme_api_");
        var parts = ciphertext.Split('.');
        parts.Length.ShouldBe(4);
        parts[0].ShouldBe("lkr1");
        parts[1].ShouldBe("1");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4096)]
    public async Task EncryptAsync_AnyLength_Roundtrips(int length)
    {
        var ring = Open();
        var plaintext = Enumerable.Range(0, length).Select(i => (byte)i).ToArray();

        var ciphertext = await ring.EncryptAsync(plaintext, Context, CancellationToken.None);

        (await ring.DecryptAsync(ciphertext, Context, CancellationToken.None)).ShouldBe(plaintext);
    }

    [Fact]
    public async Task EncryptAsync_NullOrgContext_Roundtrips()
    {
        var ring = Open();
        var platform = new KmsContext(null, "provider", "cred-1");

        var ciphertext = await ring.EncryptAsync(Plaintext, platform, CancellationToken.None);

        (await ring.DecryptAsync(ciphertext, platform, CancellationToken.None)).ShouldBe(Plaintext);
        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(ciphertext, platform with { Org = Acme }, CancellationToken.None));
    }

    [Fact]
    public async Task EncryptAsync_SamePlaintextTwice_CiphertextsDiffer()
    {
        var ring = Open();

        var first = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        var second = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);

        first.ShouldNotBe(second);
        first.Split('.')[2].ShouldNotBe(second.Split('.')[2]);
        first.Split('.')[3].ShouldNotBe(second.Split('.')[3]);
    }

    public static TheoryData<string, KmsContext> OtherContexts => new()
    {
        { "other org", Context with { Org = OrgSlug.From("globex") } },
        { "no org", Context with { Org = null } },
        { "other purpose", Context with { Purpose = "gcp_sa" } },
        { "other subject", Context with { SubjectId = "key-2" } },
        { "subject case", Context with { SubjectId = "KEY-1" } },
    };

    [Theory]
    [MemberData(nameof(OtherContexts))]
    public async Task DecryptAsync_DifferentContext_ThrowsKmsDecryptionException(string scenario, KmsContext other)
    {
        var ring = Open();
        var ciphertext = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);

        var ex = await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(ciphertext, other, CancellationToken.None));

        ex.Message.ShouldNotBeNullOrWhiteSpace(scenario);
    }

    [Theory]
    [InlineData(2, 0, "wrapped key nonce")]
    [InlineData(2, 20, "wrapped key body")]
    [InlineData(2, -1, "wrapped key tag")]
    [InlineData(3, 0, "payload nonce")]
    [InlineData(3, 12, "payload body")]
    [InlineData(3, -1, "payload tag")]
    [InlineData(3, -16, "payload tag first byte")]
    public async Task DecryptAsync_FlippedByte_ThrowsKmsDecryptionException(int part, int index, string where)
    {
        var ring = Open();
        var ciphertext = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);

        var tampered = FlipByte(ciphertext, part, index);

        tampered.ShouldNotBe(ciphertext, where);
        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(tampered, Context, CancellationToken.None));
    }

    [Theory]
    [InlineData("")]
    [InlineData("garbage")]
    [InlineData("lkr1")]
    [InlineData("lkr1.1")]
    [InlineData("lkr1.1.AAAA")]
    [InlineData("lkr1.1.AAAA.AAAA")]
    [InlineData("lkr1.1.AAAA.AAAA.AAAA")]
    [InlineData("lkr2.1.AAAA.AAAA")]
    [InlineData("lkr1.x.AAAA.AAAA")]
    [InlineData("lkr1.99999999999.AAAA.AAAA")]
    [InlineData("lkr1.7.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("lkr1.1.!!!!.????")]
    [InlineData("lkr1.1.A.A")]
    public async Task DecryptAsync_GarbageCiphertext_ThrowsKmsDecryptionException(string ciphertext)
    {
        var ring = Open();

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(ciphertext, Context, CancellationToken.None));
    }

    [Fact]
    public async Task DecryptAsync_TruncatedCiphertext_ThrowsKmsDecryptionException()
    {
        var ring = Open();
        var ciphertext = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);

        for (var cut = 1; cut < 40; cut++)
        {
            var truncated = ciphertext[..^cut];
            await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(truncated, Context, CancellationToken.None));
        }
    }

    [Fact]
    public async Task DecryptAsync_SwappedPayloadFromAnotherCiphertext_ThrowsKmsDecryptionException()
    {
        var ring = Open();
        var first = (await ring.EncryptAsync(Plaintext, Context, CancellationToken.None)).Split('.');
        var second = (await ring.EncryptAsync(Plaintext, Context, CancellationToken.None)).Split('.');

        var mixed = string.Join('.', first[0], first[1], first[2], second[3]);

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(mixed, Context, CancellationToken.None));
    }

    [Fact]
    public async Task DecryptAsync_CiphertextFromAnotherKeyRing_ThrowsKmsDecryptionException()
    {
        using var otherTemp = new TempDirectory();
        var other = LocalKeyRing.OpenOrCreate(otherTemp.Combine("keyring.json"), TimeProvider.System);
        var ciphertext = await other.EncryptAsync(Plaintext, Context, CancellationToken.None);

        await Should.ThrowAsync<KmsDecryptionException>(() => Open().DecryptAsync(ciphertext, Context, CancellationToken.None));
    }

    [Fact]
    public async Task Rotate_OldCiphertext_StillDecryptsAndNewUsesNewVersion()
    {
        var ring = Open();
        var old = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);

        var version = ring.Rotate();

        version.ShouldBe(2);
        ring.PrimaryVersion.ShouldBe(2);
        (await ring.DecryptAsync(old, Context, CancellationToken.None)).ShouldBe(Plaintext);
        var fresh = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        fresh.Split('.')[1].ShouldBe("2");
        old.Split('.')[1].ShouldBe("1");
        (await ring.DecryptAsync(fresh, Context, CancellationToken.None)).ShouldBe(Plaintext);
    }

    [Fact]
    public void Rotate_Twice_VersionsIncreaseAndFileStays0600()
    {
        var ring = Open();

        ring.Rotate().ShouldBe(2);
        ring.Rotate().ShouldBe(3);

        ring.PrimaryVersion.ShouldBe(3);
        File.Exists(KeyFile + ".tmp").ShouldBeFalse();
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(KeyFile).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    [Fact]
    public async Task RewrapAsync_OldCiphertext_MovesToPrimaryAndStillDecrypts()
    {
        var ring = Open();
        var old = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        ring.Rotate();

        var rewrapped = await ring.RewrapAsync(old, Context, CancellationToken.None);

        rewrapped.Split('.')[1].ShouldBe("2");
        rewrapped.Split('.')[3].ShouldBe(old.Split('.')[3]); // the payload is untouched
        rewrapped.Split('.')[2].ShouldNotBe(old.Split('.')[2]);
        (await ring.DecryptAsync(rewrapped, Context, CancellationToken.None)).ShouldBe(Plaintext);
        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(rewrapped, Context with { SubjectId = "key-2" }, CancellationToken.None));
    }

    [Fact]
    public async Task RewrapAsync_CiphertextAlreadyOnPrimary_ReturnedUnchanged()
    {
        var ring = Open();
        var ciphertext = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);

        (await ring.RewrapAsync(ciphertext, Context, CancellationToken.None)).ShouldBe(ciphertext);
    }

    [Fact]
    public async Task RewrapAsync_WrongContext_ThrowsKmsDecryptionException()
    {
        var ring = Open();
        var old = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        ring.Rotate();

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.RewrapAsync(old, Context with { Purpose = "other" }, CancellationToken.None));
    }

    [Fact]
    public async Task RewrapAsync_TamperedPayload_ThrowsInsteadOfCarryingItToTheNewVersion()
    {
        var ring = Open();
        var parts = (await ring.EncryptAsync(Plaintext, Context, CancellationToken.None)).Split('.');
        ring.Rotate();
        var payload = Base64Url.DecodeFromChars(parts[3]);
        payload[^1] ^= 0x01;

        var tampered = string.Join('.', parts[0], parts[1], parts[2], Base64Url.EncodeToString(payload));

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.RewrapAsync(tampered, Context, CancellationToken.None));
    }

    [Fact]
    public async Task DecryptAsync_VersionFieldChangedToAnotherExistingVersion_ThrowsKmsDecryptionException()
    {
        var ring = Open();
        var old = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        ring.Rotate();
        var parts = old.Split('.');

        var relabelled = string.Join('.', parts[0], "2", parts[2], parts[3]);

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(relabelled, Context, CancellationToken.None));
    }

    [Fact]
    public async Task OpenOrCreate_AfterRotate_ReopenedRingSeesRotatedKeys()
    {
        var ring = Open();
        var old = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        ring.Rotate();
        var fresh = await ring.EncryptAsync(Plaintext, Context, CancellationToken.None);
        var rewrapped = await ring.RewrapAsync(old, Context, CancellationToken.None);

        var reopened = Open();

        reopened.PrimaryVersion.ShouldBe(2);
        (await reopened.DecryptAsync(old, Context, CancellationToken.None)).ShouldBe(Plaintext);
        (await reopened.DecryptAsync(fresh, Context, CancellationToken.None)).ShouldBe(Plaintext);
        (await reopened.DecryptAsync(rewrapped, Context, CancellationToken.None)).ShouldBe(Plaintext);
        (await reopened.EncryptAsync(Plaintext, Context, CancellationToken.None)).Split('.')[1].ShouldBe("2");
    }

    [Fact]
    public async Task OpenOrCreate_ExistingFile_KeepsKeys()
    {
        var ciphertext = await Open().EncryptAsync(Plaintext, Context, CancellationToken.None);

        (await Open().DecryptAsync(ciphertext, Context, CancellationToken.None)).ShouldBe(Plaintext);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("{\"primary\": \"one\", \"keys\": []}")]
    public void OpenOrCreate_InvalidJsonKeyFile_ThrowsInvalidOperationExceptionNamingPath(string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(KeyFile)!);
        File.WriteAllText(KeyFile, content);

        var ex = Should.Throw<InvalidOperationException>(() => Open());

        ex.Message.ShouldContain(KeyFile);
    }

    [Theory]
    [InlineData("{\"primary\": 1, \"keys\": []}")]
    [InlineData("{\"primary\": 2, \"keys\": [{\"version\": 1, \"created_at\": \"2025-01-01T00:00:00Z\", \"material\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}")]
    [InlineData("{\"primary\": 1, \"keys\": [{\"version\": 1, \"created_at\": \"2025-01-01T00:00:00Z\", \"material\": \"AAAA\"}]}")]
    [InlineData("null")]
    public void OpenOrCreate_DamagedKeyFile_ThrowsInvalidOperationExceptionNamingPath(string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(KeyFile)!);
        File.WriteAllText(KeyFile, content);

        var ex = Should.Throw<InvalidOperationException>(() => Open());

        ex.Message.ShouldContain(KeyFile);
    }

    [Theory]
    [InlineData("{\"primary\": 1, \"keys\": null}")]
    [InlineData("{\"primary\": 1, \"keys\": [null]}")]
    [InlineData("{\"primary\": 1, \"keys\": [{\"version\": 1, \"material\": null}]}")]
    public void OpenOrCreate_KeyFileWithNulls_ThrowsInvalidOperationExceptionNamingPath(string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(KeyFile)!);
        File.WriteAllText(KeyFile, content);

        var ex = Should.Throw<InvalidOperationException>(() => Open());

        ex.Message.ShouldContain(KeyFile);
    }

    [Fact]
    public async Task DecryptAsync_ContextsWithSameJoinedText_ThrowsKmsDecryptionException()
    {
        var ring = Open();
        var bound = new KmsContext(Acme, "a|id=b", "c");
        var other = new KmsContext(Acme, "a", "b|id=c");
        var ciphertext = await ring.EncryptAsync(Plaintext, bound, CancellationToken.None);

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(ciphertext, other, CancellationToken.None));
    }

    [Theory]
    [InlineData("01")]
    [InlineData("+1")]
    [InlineData(" 1")]
    public async Task DecryptAsync_NonCanonicalVersionField_ThrowsKmsDecryptionException(string version)
    {
        var ring = Open();
        var parts = (await ring.EncryptAsync(Plaintext, Context, CancellationToken.None)).Split('.');

        var respelled = string.Join('.', parts[0], version, parts[2], parts[3]);

        await Should.ThrowAsync<KmsDecryptionException>(() => ring.DecryptAsync(respelled, Context, CancellationToken.None));
    }

    private static string FlipByte(string ciphertext, int part, int index)
    {
        var parts = ciphertext.Split('.');
        var bytes = Base64Url.DecodeFromChars(parts[part]);
        var at = index < 0 ? bytes.Length + index : index;
        bytes[at] ^= 0x01;
        parts[part] = Base64Url.EncodeToString(bytes);
        return string.Join('.', parts);
    }
}
