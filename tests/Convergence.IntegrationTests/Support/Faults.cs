using Convergence.Core.Audit;
using Convergence.Core.Keys;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.IntegrationTests.Support;

/// <summary>Where a test can make the storage or KMS adapters fail.</summary>
public enum FaultPoint
{
    None,
    InsertSubscription,
    InsertUsageQuota,
    InsertApiKey,

    /// <summary><see cref="IControlPlaneTransaction.RecordAuditAsync"/>, inside the transaction (the store's own audit call is unaffected).</summary>
    TransactionRecordAudit,
    Commit,
    WarehouseEnsureTable,
    KmsEncrypt,
}

/// <summary>The fault currently armed in a factory; switchable at any time, thread-safe.</summary>
public sealed class FaultPlan
{
    private int _active;
    private int _triggered;

    public FaultPoint Active
    {
        get => (FaultPoint)Volatile.Read(ref _active);
        set => Volatile.Write(ref _active, (int)value);
    }

    /// <summary>How many times an armed fault has fired.</summary>
    public int Triggered => Volatile.Read(ref _triggered);

    internal void ThrowIf(FaultPoint point)
    {
        if (point != FaultPoint.None && Active == point)
        {
            Interlocked.Increment(ref _triggered);
            throw new InjectedFaultException(point);
        }
    }
}

/// <summary>Thrown by the faulty decorators; an "unexpected" exception, so the API must answer 500.</summary>
public sealed class InjectedFaultException(FaultPoint point) : Exception($"Injected fault at {point}.")
{
    public FaultPoint Point { get; } = point;
}

/// <summary>Forwards to the real store; its transactions can fail on a chosen method.</summary>
internal sealed class FaultyControlPlaneStore(IControlPlaneStore inner, FaultPlan faults) : IControlPlaneStore
{
    public string Kind => inner.Kind;

    public Task<BootstrapOutcome> BootstrapAsync(IReadOnlyList<TableSchema> tables, BootstrapOptions options, CancellationToken cancellationToken) =>
        inner.BootstrapAsync(tables, options, cancellationToken);

    public Task<bool> IsBootstrappedAsync(CancellationToken cancellationToken) => inner.IsBootstrappedAsync(cancellationToken);

    public Task<bool> IsReachableAsync(CancellationToken cancellationToken) => inner.IsReachableAsync(cancellationToken);

    public async Task<IControlPlaneTransaction> BeginTransactionAsync(CancellationToken cancellationToken) =>
        new FaultyControlPlaneTransaction(await inner.BeginTransactionAsync(cancellationToken), faults);

    public Task<OrgProfile?> FindOrganizationAsync(OrgSlug org, CancellationToken cancellationToken) => inner.FindOrganizationAsync(org, cancellationToken);

    public Task<OrgOverview?> GetOrganizationOverviewAsync(OrgSlug org, DateOnly usageDate, CancellationToken cancellationToken) =>
        inner.GetOrganizationOverviewAsync(org, usageDate, cancellationToken);

    public Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(OrgSlug org, CancellationToken cancellationToken) => inner.ListApiKeysAsync(org, cancellationToken);

    public Task<ApiKeyLookup?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken) => inner.FindApiKeyByHashAsync(keyHash, cancellationToken);

    public Task TouchApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken) =>
        inner.TouchApiKeyAsync(org, keyId, at, cancellationToken);

    public Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken) => inner.RecordAuditAsync(entry, cancellationToken);

    public Task<IReadOnlyList<AuditEntry>> ListAuditAsync(OrgSlug org, int limit, CancellationToken cancellationToken) => inner.ListAuditAsync(org, limit, cancellationToken);

    public Task SaveRunAsync(PipelineRunRecord run, CancellationToken cancellationToken) => inner.SaveRunAsync(run, cancellationToken);

    public Task SaveStepAsync(StepLogRecord step, CancellationToken cancellationToken) => inner.SaveStepAsync(step, cancellationToken);

    public Task SaveRunAsync(PipelineRunRecord run, IReadOnlyList<StepLogRecord> steps, CancellationToken cancellationToken) => inner.SaveRunAsync(run, steps, cancellationToken);

    public Task CreateRunAsync(PipelineRunRecord run, CancellationToken cancellationToken) => inner.CreateRunAsync(run, cancellationToken);

    public Task ReplaceCredentialAsync(Convergence.Core.Integrations.IntegrationCredential credential, CancellationToken cancellationToken) =>
        inner.ReplaceCredentialAsync(credential, cancellationToken);

    public Task<Convergence.Core.Integrations.IntegrationCredential?> FindActiveCredentialAsync(OrgSlug org, Convergence.Core.Integrations.IntegrationProvider provider, CancellationToken cancellationToken) =>
        inner.FindActiveCredentialAsync(org, provider, cancellationToken);

    public Task<IReadOnlyList<Convergence.Core.Integrations.IntegrationCredential>> ListActiveCredentialsAsync(OrgSlug org, CancellationToken cancellationToken) =>
        inner.ListActiveCredentialsAsync(org, cancellationToken);

    public Task<bool> UpdateCredentialValidationAsync(OrgSlug org, string credentialId, string status, string? lastError, DateTimeOffset at, CancellationToken cancellationToken) =>
        inner.UpdateCredentialValidationAsync(org, credentialId, status, lastError, at, cancellationToken);

    public Task<IReadOnlyList<StoredCiphertext>> ListCiphertextsAsync(CiphertextTable table, string? afterRecordId, int limit, CancellationToken cancellationToken) =>
        inner.ListCiphertextsAsync(table, afterRecordId, limit, cancellationToken);

    public Task<bool> ReplaceCiphertextAsync(CiphertextTable table, string recordId, string expected, string replacement, CancellationToken cancellationToken) =>
        inner.ReplaceCiphertextAsync(table, recordId, expected, replacement, cancellationToken);

    public Task<bool> DeactivateCredentialAsync(OrgSlug org, Convergence.Core.Integrations.IntegrationProvider provider, DateTimeOffset at, CancellationToken cancellationToken) =>
        inner.DeactivateCredentialAsync(org, provider, at, cancellationToken);

    public Task<PipelineRunRecord?> FindRunAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken) => inner.FindRunAsync(pipelineLoggingId, org, cancellationToken);

    public Task<PipelineRunRecord?> FindRunByIdempotencyKeyAsync(OrgSlug org, string idempotencyKey, CancellationToken cancellationToken) =>
        inner.FindRunByIdempotencyKeyAsync(org, idempotencyKey, cancellationToken);

    public Task<RunPage> ListRunsAsync(RunQuery query, CancellationToken cancellationToken) => inner.ListRunsAsync(query, cancellationToken);

    public Task<IReadOnlyList<StepLogRecord>> ListStepsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken) =>
        inner.ListStepsAsync(pipelineLoggingId, org, cancellationToken);

    public Task SaveDqResultAsync(DqResultRecord result, CancellationToken cancellationToken) => inner.SaveDqResultAsync(result, cancellationToken);

    public Task<IReadOnlyList<DqResultRecord>> ListDqResultsAsync(string pipelineLoggingId, OrgSlug? org, CancellationToken cancellationToken) =>
        inner.ListDqResultsAsync(pipelineLoggingId, org, cancellationToken);

    public Task<PipelineRunRecord?> RequestCancelAsync(string pipelineLoggingId, OrgSlug? org, DateTimeOffset at, CancellationToken cancellationToken) =>
        inner.RequestCancelAsync(pipelineLoggingId, org, at, cancellationToken);

    public Task<IReadOnlyList<string>> HeartbeatAsync(string workerId, DateTimeOffset at, CancellationToken cancellationToken) => inner.HeartbeatAsync(workerId, at, cancellationToken);

    public Task<int> FailAbandonedRunsAsync(DateTimeOffset staleBefore, DateTimeOffset at, string reason, CancellationToken cancellationToken) =>
        inner.FailAbandonedRunsAsync(staleBefore, at, reason, cancellationToken);
}

internal sealed class FaultyControlPlaneTransaction(IControlPlaneTransaction inner, FaultPlan faults) : IControlPlaneTransaction
{
    public Task InsertOrganizationAsync(OrgProfile profile, CancellationToken cancellationToken) => inner.InsertOrganizationAsync(profile, cancellationToken);

    public Task<bool> UpdateOrganizationAsync(OrgProfile profile, CancellationToken cancellationToken) => inner.UpdateOrganizationAsync(profile, cancellationToken);

    public Task InsertSubscriptionAsync(OrgSubscription subscription, CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.InsertSubscription);
        return inner.InsertSubscriptionAsync(subscription, cancellationToken);
    }

    public Task UpdateSubscriptionAsync(OrgSubscription subscription, CancellationToken cancellationToken) => inner.UpdateSubscriptionAsync(subscription, cancellationToken);

    public Task InsertUsageQuotaAsync(OrgUsageQuota quota, CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.InsertUsageQuota);
        return inner.InsertUsageQuotaAsync(quota, cancellationToken);
    }

    public Task InsertApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.InsertApiKey);
        return inner.InsertApiKeyAsync(key, cancellationToken);
    }

    public Task<int> ExpireApiKeysAsync(OrgSlug org, DateTimeOffset expiresAt, string? exceptKeyId, CancellationToken cancellationToken) =>
        inner.ExpireApiKeysAsync(org, expiresAt, exceptKeyId, cancellationToken);

    public Task<bool> RevokeApiKeyAsync(OrgSlug org, string keyId, DateTimeOffset at, CancellationToken cancellationToken) =>
        inner.RevokeApiKeyAsync(org, keyId, at, cancellationToken);

    public Task<int> RevokeAllApiKeysAsync(OrgSlug org, DateTimeOffset at, CancellationToken cancellationToken) =>
        inner.RevokeAllApiKeysAsync(org, at, cancellationToken);

    public Task RecordAuditAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.TransactionRecordAudit);
        return inner.RecordAuditAsync(entry, cancellationToken);
    }

    public Task CommitAsync(CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.Commit);
        return inner.CommitAsync(cancellationToken);
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>Forwards to the real warehouse; <see cref="EnsureTableAsync"/> can fail (after the dataset was created).</summary>
internal sealed class FaultyWarehouse(IWarehouse inner, FaultPlan faults) : IWarehouse
{
    public string Kind => inner.Kind;

    /// <summary>The real warehouse this one forwards to.</summary>
    public IWarehouse Inner => inner;

    public Task<bool> DatasetExistsAsync(DatasetRef dataset, CancellationToken cancellationToken) => inner.DatasetExistsAsync(dataset, cancellationToken);

    public Task<bool> CreateDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken) => inner.CreateDatasetAsync(dataset, cancellationToken);

    public Task DropDatasetAsync(DatasetRef dataset, CancellationToken cancellationToken) => inner.DropDatasetAsync(dataset, cancellationToken);

    public Task<IReadOnlyList<string>> ListTablesAsync(DatasetRef dataset, CancellationToken cancellationToken) => inner.ListTablesAsync(dataset, cancellationToken);

    public Task<bool> EnsureTableAsync(DatasetRef dataset, TableSchema schema, CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.WarehouseEnsureTable);
        return inner.EnsureTableAsync(dataset, schema, cancellationToken);
    }

    public Task DropTableAsync(DatasetRef dataset, string table, CancellationToken cancellationToken) => inner.DropTableAsync(dataset, table, cancellationToken);

    public Task<IWarehouseWrite> BeginWriteAsync(DatasetRef dataset, TableSchema schema, WriteSpec spec, CancellationToken cancellationToken) =>
        inner.BeginWriteAsync(dataset, schema, spec, cancellationToken);

    public Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> QueryAsync(DatasetRef dataset, SqlQuery query, int maxRows, CancellationToken cancellationToken) =>
        inner.QueryAsync(dataset, query, maxRows, cancellationToken);

    public IAsyncEnumerable<IReadOnlyDictionary<string, object?>> StreamAsync(DatasetRef dataset, SqlQuery query, CancellationToken cancellationToken) =>
        inner.StreamAsync(dataset, query, cancellationToken);

    public Task<long> CountRowsAsync(DatasetRef dataset, string table, CancellationToken cancellationToken) => inner.CountRowsAsync(dataset, table, cancellationToken);

    public Task<WarehouseProbe> ProbeAsync(CancellationToken cancellationToken) => inner.ProbeAsync(cancellationToken);
}

/// <summary>Forwards to the real KMS; <see cref="EncryptAsync"/> can fail.</summary>
internal sealed class FaultyKeyManagementService(IKeyManagementService inner, FaultPlan faults) : IKeyManagementService
{
    public string Kind => inner.Kind;

    public Task<string> EncryptAsync(ReadOnlyMemory<byte> plaintext, KmsContext context, CancellationToken cancellationToken)
    {
        faults.ThrowIf(FaultPoint.KmsEncrypt);
        return inner.EncryptAsync(plaintext, context, cancellationToken);
    }

    public Task<byte[]> DecryptAsync(string ciphertext, KmsContext context, CancellationToken cancellationToken) => inner.DecryptAsync(ciphertext, context, cancellationToken);

    public Task<bool> IsReadyAsync(CancellationToken cancellationToken) => inner.IsReadyAsync(cancellationToken);
}
