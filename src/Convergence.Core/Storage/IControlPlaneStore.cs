using Convergence.Core.Audit;
using Convergence.Core.Integrations;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;

namespace Convergence.Core.Storage;

/// <summary>
/// The control plane: the central <c>organizations</c> dataset (orgs, keys, subscriptions, quotas, run logs, audit).
/// </summary>
/// <remarks>
/// <para>Reads of org data take the <see cref="OrgSlug"/> explicitly. The one unscoped read is
/// <see cref="FindApiKeyByHashAsync"/>: the SHA-256 of a presented key is what establishes the org.</para>
/// <para>Writes that must happen together go through an <see cref="IControlPlaneTransaction"/>, committed
/// explicitly; disposing an uncommitted transaction rolls it back.</para>
/// </remarks>
public interface IControlPlaneStore
{
    /// <summary>A short name for logs and health checks, such as <c>sqlite</c>.</summary>
    string Kind { get; }

    /// <summary>Creates the central dataset and its tables from <paramref name="tables"/>; idempotent unless forced.</summary>
    Task<BootstrapOutcome> BootstrapAsync(IReadOnlyList<TableSchema> tables, BootstrapOptions options, CancellationToken cancellationToken);

    /// <summary>Whether bootstrap has created every central table the store needs.</summary>
    Task<bool> IsBootstrappedAsync(CancellationToken cancellationToken);

    /// <summary>Checks the store answers.</summary>
    Task<bool> IsReachableAsync(CancellationToken cancellationToken);

    Task<IControlPlaneTransaction> BeginTransactionAsync(CancellationToken cancellationToken);

    Task<OrgProfile?> FindOrganizationAsync(OrgSlug org, CancellationToken cancellationToken);

    Task<OrgOverview?> GetOrganizationOverviewAsync(OrgSlug org, DateOnly usageDate, CancellationToken cancellationToken);

    Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(OrgSlug org, CancellationToken cancellationToken);

    /// <summary>Finds a key by the SHA-256 of its secret, with its org's status.</summary>
    Task<ApiKeyLookup?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken);

    /// <summary>Records that a key was used; best effort, called at most once per cache period.</summary>
    Task TouchApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken);

    Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken);

    Task<IReadOnlyList<AuditEntry>> ListAuditAsync(OrgSlug org, int limit, CancellationToken cancellationToken);

    /// <summary>Inserts or updates a run row (keyed by its logging id).</summary>
    Task SaveRunAsync(PipelineRunRecord run, CancellationToken cancellationToken);

    /// <summary>Inserts or updates a step row (keyed by its logging id).</summary>
    Task SaveStepAsync(StepLogRecord step, CancellationToken cancellationToken);

    /// <summary>
    /// Inserts or updates a run row and then its step rows, as <see cref="SaveRunAsync(PipelineRunRecord, CancellationToken)"/> and
    /// <see cref="SaveStepAsync"/> would (an adapter may send them together).
    /// </summary>
    Task SaveRunAsync(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken);

    /// <summary>Inserts a new run; throws <see cref="DuplicateRowException"/> when the org already used its idempotency key.</summary>
    Task CreateRunAsync(PipelineRunRecord run, CancellationToken cancellationToken);

    /// <summary>Stores a credential as the org's only active one for its provider (earlier ones are deactivated and their ciphertext erased).</summary>
    Task ReplaceCredentialAsync(IntegrationCredential credential, CancellationToken cancellationToken);

    Task<IntegrationCredential?> FindActiveCredentialAsync(OrgSlug org, IntegrationProvider provider, CancellationToken cancellationToken);

    /// <summary>The org's active credentials, one per provider at most.</summary>
    Task<IReadOnlyList<IntegrationCredential>> ListActiveCredentialsAsync(OrgSlug org, CancellationToken cancellationToken);

    /// <summary>
    /// Records the outcome of a check of the org's credential <paramref name="credentialId"/>; false when that credential
    /// is gone or no longer active (replaced meanwhile), so a late check never overwrites a newer credential's status.
    /// </summary>
    Task<bool> UpdateCredentialValidationAsync(OrgSlug org, string credentialId, string status, string? lastError, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Deactivates the org's credential for the provider and erases its ciphertext; false when it had none.</summary>
    Task<bool> DeactivateCredentialAsync(OrgSlug org, IntegrationProvider provider, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>
    /// A page of the ciphertexts in <paramref name="table"/>, ordered by record id, after <paramref name="afterRecordId"/>
    /// (keyset paging: pass the last id of the previous page; null for the first). At most <paramref name="limit"/> rows.
    /// </summary>
    Task<IReadOnlyList<StoredCiphertext>> ListCiphertextsAsync(CiphertextTable table, string? afterRecordId, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces one row's ciphertext if it still is <paramref name="expected"/> (compare-and-swap, so a concurrent change
    /// of the row wins); false when the row is gone or changed.
    /// </summary>
    Task<bool> ReplaceCiphertextAsync(CiphertextTable table, string recordId, string expected, string replacement, CancellationToken cancellationToken);

    /// <summary>A run by id; with an org, only that org's run (another org's id reads as missing).</summary>
    Task<PipelineRunRecord?> FindRunAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken);

    Task<PipelineRunRecord?> FindRunByIdempotencyKeyAsync(OrgSlug org, string idempotencyKey, CancellationToken cancellationToken);

    Task<RunPage> ListRunsAsync(RunQuery query, CancellationToken cancellationToken);

    Task<IReadOnlyList<StepLogRecord>> ListStepsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken);

    Task SaveDqResultAsync(DqResultRecord result, CancellationToken cancellationToken);

    Task<IReadOnlyList<DqResultRecord>> ListDqResultsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken);

    /// <summary>Marks cancellation wanted; returns the run as it now is, or null when the org has no such run.</summary>
    Task<PipelineRunRecord?> RequestCancelAsync(string pipelineLoggingId, OrgSlug? org, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>
    /// Refreshes the heartbeat of every unfinished run <paramref name="workerId"/> holds, and returns the ids among them
    /// whose cancellation was requested.
    /// </summary>
    Task<IReadOnlyList<string>> HeartbeatAsync(string workerId, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>
    /// Fails unfinished runs whose heartbeat is older than <paramref name="staleBefore"/> (their worker died), and their
    /// unfinished steps; returns how many runs.
    /// </summary>
    Task<int> FailAbandonedRunsAsync(DateTimeOffset staleBefore, DateTimeOffset at, string reason, CancellationToken cancellationToken);
}

/// <summary>Writes to the control plane that commit or roll back together.</summary>
public interface IControlPlaneTransaction : IAsyncDisposable
{
    Task InsertOrganizationAsync(OrgProfile profile, CancellationToken cancellationToken);

    /// <summary>Updates plan, status and timestamp; returns <c>false</c> when the org does not exist.</summary>
    Task<bool> UpdateOrganizationAsync(OrgProfile profile, CancellationToken cancellationToken);

    Task InsertSubscriptionAsync(OrgSubscription subscription, CancellationToken cancellationToken);

    Task UpdateSubscriptionAsync(OrgSubscription subscription, CancellationToken cancellationToken);

    Task InsertUsageQuotaAsync(OrgUsageQuota quota, CancellationToken cancellationToken);

    Task InsertApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken);

    /// <summary>Sets the expiry of the org's usable keys (except <paramref name="exceptKeyId"/>) to at most <paramref name="expiresAt"/>.</summary>
    Task<int> ExpireApiKeysAsync(OrgSlug org, DateTimeOffset expiresAt, string? exceptKeyId, CancellationToken cancellationToken);

    /// <summary>Revokes one key of the org; <c>false</c> when the org has no such active key.</summary>
    Task<bool> RevokeApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Revokes every active key of the org; returns how many.</summary>
    Task<int> RevokeAllApiKeysAsync(OrgSlug org, DateTimeOffset at, CancellationToken cancellationToken);

    Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken);

    Task CommitAsync(CancellationToken cancellationToken);
}

/// <summary>Flags of a bootstrap run.</summary>
public sealed record BootstrapOptions(bool ForceRecreateDataset, bool ForceRecreateTables);

/// <summary>What a bootstrap created.</summary>
public sealed record BootstrapOutcome(bool DatasetCreated, IReadOnlyList<string> TablesCreated, IReadOnlyList<string> TablesExisting);
