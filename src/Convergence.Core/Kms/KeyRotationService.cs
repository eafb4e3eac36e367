using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Storage;
using Microsoft.Extensions.Logging;

namespace Convergence.Core.Kms;

/// <summary>
/// Rotates the local key ring's key-encryption key and re-wraps every stored ciphertext (provider credentials and the
/// encrypted copies of org API keys) with the new version.
/// </summary>
/// <remarks>
/// <para>No downtime: the new version becomes primary first, and older versions keep decrypting, so requests that read
/// credentials or keys during the re-wrap still succeed. Rows are read a page at a time (keyset paging) and each is
/// replaced only if it is still the ciphertext that was read (compare-and-swap), so a credential stored meanwhile is
/// never overwritten.</para>
/// <para>Re-running is safe: rows already on the primary version are left alone, and <c>rewrapOnly</c> finishes an
/// interrupted rotation without adding another version. A row that does not decrypt (tampered, or bound to another
/// context) is counted as failed and named by table and id; nothing secret is logged or returned.</para>
/// <para>Managed KMSs (Google Cloud KMS) rotate their keys themselves; for them this refuses with a conflict.</para>
/// </remarks>
public sealed partial class KeyRotationService(
    IControlPlaneStore store, IKeyManagementService kms, TimeProvider time, ILogger<KeyRotationService> logger, IKeyEncryptionKeyRotation? rotation = null)
{
    public const int DefaultBatchSize = 200;

    /// <summary>At most this many failed rows are named in the result (all are counted).</summary>
    public const int MaxFailedRecordsListed = 100;

    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Whether this deployment's KMS is rotated by Convergence (the local key ring).</summary>
    public bool IsSupported => rotation is not null;

    /// <summary>
    /// Adds a key-encryption key version (unless <paramref name="rewrapOnly"/>) and re-wraps every stored ciphertext with
    /// the primary version, <paramref name="batchSize"/> rows at a time; audited as <c>platform.kms.rotate</c>.
    /// </summary>
    /// <exception cref="ConflictException">The KMS rotates its own keys, or another rotation is running.</exception>
    public async Task<KeyRotationResult> RotateAsync(Actor actor, bool rewrapOnly, int batchSize = DefaultBatchSize, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (rotation is null)
        {
            throw new ConflictException(
                "Key rotation is managed by the KMS",
                $"The '{kms.Kind}' KMS rotates its key-encryption keys itself (for Google Cloud KMS: set a rotation period or create a new primary version on the key); older versions keep decrypting, so Convergence has nothing to re-wrap.");
        }

        if (!await _gate.WaitAsync(TimeSpan.Zero, cancellationToken))
        {
            throw new ConflictException("Key rotation running", "Another key rotation is running; re-run this one when it has finished (re-running is safe).");
        }

        try
        {
            var version = rewrapOnly ? rotation.PrimaryVersion : rotation.Rotate();
            LogRotationStarted(logger, version, rewrapOnly);
            var tally = new Tally();
            foreach (var table in Enum.GetValues<CiphertextTable>())
            {
                await RewrapTableAsync(table, batchSize, tally, cancellationToken);
            }

            var result = new KeyRotationResult(version, tally.Rewrapped, tally.Failed, tally.AlreadyCurrent, tally.FailedRecords);
            LogRotationFinished(logger, version, result.Rewrapped, result.Failed, result.AlreadyCurrent);
            await store.RecordAuditAsync(
                actor.Audit("platform.kms.rotate", null, result.Failed == 0 ? AuditOutcome.Success : AuditOutcome.Failure, time.GetUtcNow(), new Dictionary<string, object?>
                {
                    ["kms"] = kms.Kind,
                    ["key_version"] = version,
                    ["rewrap_only"] = rewrapOnly,
                    ["rewrapped"] = result.Rewrapped,
                    ["failed"] = result.Failed,
                    ["already_current"] = result.AlreadyCurrent,
                }),
                CancellationToken.None);
            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task RewrapTableAsync(CiphertextTable table, int batchSize, Tally tally, CancellationToken cancellationToken)
    {
        string? after = null;
        while (true)
        {
            var page = await store.ListCiphertextsAsync(table, after, batchSize, cancellationToken);
            foreach (var row in page)
            {
                string rewrapped;
                try
                {
                    rewrapped = await rotation!.RewrapAsync(row.Ciphertext, Context(row), cancellationToken);
                }
                catch (KmsDecryptionException ex)
                {
                    tally.Fail(row);
                    LogRewrapFailed(logger, table, row.RecordId, ex.Message);
                    continue;
                }

                if (rewrapped == row.Ciphertext)
                {
                    tally.AlreadyCurrent++;
                }
                else if (await store.ReplaceCiphertextAsync(table, row.RecordId, row.Ciphertext, rewrapped, cancellationToken))
                {
                    tally.Rewrapped++;
                }
                else
                {
                    // Changed since it was read: whoever changed it encrypted with the (new) primary version.
                    tally.AlreadyCurrent++;
                }
            }

            if (page.Count < batchSize)
            {
                return;
            }

            after = page[^1].RecordId;
        }
    }

    private static KmsContext Context(StoredCiphertext row) => row.Table switch
    {
        CiphertextTable.OrgApiKeys => KmsContext.ForOrgApiKey(row.Org, row.RecordId),
        _ => new KmsContext(row.Org, row.Provider ?? string.Empty, row.RecordId),
    };

    private sealed class Tally
    {
        public int Rewrapped { get; set; }

        public int Failed { get; private set; }

        public int AlreadyCurrent { get; set; }

        public List<FailedCiphertext> FailedRecords { get; } = [];

        public void Fail(StoredCiphertext row)
        {
            Failed++;
            if (FailedRecords.Count < MaxFailedRecordsListed)
            {
                FailedRecords.Add(new FailedCiphertext(row.Table, row.RecordId, row.Org.Value));
            }
        }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Key-encryption key rotation to version {KeyVersion} started (rewrap only: {RewrapOnly})")]
    private static partial void LogRotationStarted(ILogger logger, int keyVersion, bool rewrapOnly);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "Key-encryption key rotation to version {KeyVersion} finished: {Rewrapped} re-wrapped, {Failed} failed, {AlreadyCurrent} already current")]
    private static partial void LogRotationFinished(ILogger logger, int keyVersion, int rewrapped, int failed, int alreadyCurrent);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "Could not re-wrap {Table} row {RecordId}: {Reason}")]
    private static partial void LogRewrapFailed(ILogger logger, CiphertextTable table, string recordId, string reason);
}

/// <summary>What a rotation did: the primary key version, and how many rows were re-wrapped, failed or already on it.</summary>
public sealed record KeyRotationResult(int KeyVersion, int Rewrapped, int Failed, int AlreadyCurrent, IReadOnlyList<FailedCiphertext> FailedRecords);

/// <summary>A stored row that did not decrypt during a rotation (tampered, or bound to another context).</summary>
public sealed record FailedCiphertext(CiphertextTable Table, string RecordId, string OrgSlug);
