using Convergence.Core.Kms;
using Convergence.Core.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Convergence.Api.Health;

/// <summary>Readiness: the control-plane store answers.</summary>
internal sealed class StoreHealthCheck(IControlPlaneStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            if (!await store.IsReachableAsync(cancellationToken))
            {
                return HealthCheckResult.Unhealthy($"The {store.Kind} store does not answer.");
            }

            return await store.IsBootstrappedAsync(cancellationToken)
                ? HealthCheckResult.Healthy($"{store.Kind} store bootstrapped.")
                : HealthCheckResult.Degraded($"{store.Kind} store reachable; bootstrap has not been run.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"The {store.Kind} store failed: {ex.GetType().Name}.");
        }
    }
}

/// <summary>Readiness: the warehouse is reachable and writable.</summary>
internal sealed class WarehouseHealthCheck(IWarehouse warehouse) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var probe = await warehouse.ProbeAsync(cancellationToken);
        return probe.Reachable && probe.Writable
            ? HealthCheckResult.Healthy($"{warehouse.Kind} warehouse writable.")
            : HealthCheckResult.Unhealthy(probe.Problem ?? $"{warehouse.Kind} warehouse not writable.");
    }
}

/// <summary>Readiness: the KMS can encrypt.</summary>
internal sealed class KmsHealthCheck(IKeyManagementService kms) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await kms.IsReadyAsync(cancellationToken)
            ? HealthCheckResult.Healthy($"{kms.Kind} KMS ready.")
            : HealthCheckResult.Unhealthy($"{kms.Kind} KMS not ready.");
}
