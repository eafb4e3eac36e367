using System.Text.Json;
using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Core.Pipelines;

namespace Convergence.Processors.Integrations;

/// <summary>Run parameters of the integration pipelines besides the credential, which travels in <see cref="RunSecrets"/>.</summary>
public static class IntegrationParameters
{
    public const string CredentialName = "credential_name";

    /// <summary>Non-secret labels as a JSON object of strings.</summary>
    public const string Metadata = "metadata";

    internal static IntegrationProvider Provider(StepContext context)
    {
        var name = context.RequireConfigString("provider");
        return IntegrationProvider.TryFromRoute(name, out var provider)
            ? provider
            : throw new InvalidOperationException($"Step '{context.Step.StepId}' ({context.Step.PsType}): config.provider '{name}' is not one of {string.Join(", ", IntegrationProvider.All)}.");
    }

    /// <summary>The stored credential the step named by <paramref name="key"/> (an <c>integrations.kms_decrypt</c> step) decrypted.</summary>
    internal static IntegrationCredential StoredCredential(StepContext context, string key = "credential_step")
    {
        var step = context.RequireConfigString(key);
        return context.Run.CompletedSteps.TryGetValue(step, out var result) && result.Output is IntegrationCredential stored
            ? stored
            : throw new InvalidOperationException($"Step '{context.Step.StepId}' ({context.Step.PsType}): config.{key} '{step}' produced no stored credential.");
    }

    /// <summary>
    /// Marks <paramref name="stored"/> INVALID with the provider's refusal (401/403 on a data call), as every fetching step
    /// does. Recorded even when the step is being cancelled: the provider's answer is a fact about the key.
    /// </summary>
    internal static Task RecordRejectionAsync(Core.Storage.IControlPlaneStore store, IntegrationCredential stored, ProviderApis.ProviderCredentialRejectedException rejection, TimeProvider time) =>
        store.UpdateCredentialValidationAsync(stored.OrgSlug, stored.CredentialId, CredentialStatus.Invalid, rejection.Message, time.GetUtcNow(), CancellationToken.None);

    internal static Dictionary<string, string> ParseMetadata(string? json)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(json))
        {
            return metadata;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw RequestValidationException.For(Metadata, "must be a JSON object of strings.");
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.String)
                {
                    throw RequestValidationException.For($"{Metadata}.{property.Name}", "must be a string.");
                }

                metadata[property.Name] = property.Value.GetString()!;
            }
        }
        catch (JsonException)
        {
            throw RequestValidationException.For(Metadata, "must be a JSON object of strings.");
        }

        return metadata;
    }
}

/// <summary>
/// <c>integrations.kms_store</c>: encrypts the run's credential with the KMS (associated data = org + provider +
/// credential id) and stores it as the org's active credential for <c>config.provider</c>, with the status of the
/// check in <c>config.validation_step</c> (PENDING when the provider could not be reached: kept, not lost).
/// Output: the stored <see cref="IntegrationCredential"/> (ciphertext only).
/// </summary>
public sealed class KmsStoreProcessor(CredentialVault vault) : IProcessor
{
    public string PsType => "integrations.kms_store";

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var provider = IntegrationParameters.Provider(context);
        var org = context.Run.Org ?? throw new InvalidOperationException($"{PsType} needs an org.");
        var validationStep = context.RequireConfigString("validation_step");
        var check = context.Run.CompletedSteps.TryGetValue(validationStep, out var result) && result.Output is CredentialCheck c
            ? c
            : throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}): config.validation_step '{validationStep}' produced no credential check.");
        if (check.Status == CredentialStatus.Invalid)
        {
            throw RequestValidationException.For("credential", check.Reason ?? $"{provider.RouteName} refused the credential; it was not stored.");
        }

        var name = context.Parameter(IntegrationParameters.CredentialName) is { Length: > 0 } n ? n : $"{provider.RouteName} credential";
        var metadata = IntegrationParameters.ParseMetadata(context.Parameter(IntegrationParameters.Metadata));
        foreach (var (key, value) in check.Facts)
        {
            metadata[key] = value;
        }

        var stored = await vault.StoreAsync(
            org, provider, name, context.Run.Secrets.RequireBytes(RunSecrets.Credential), metadata,
            check.Status, check.Status == CredentialStatus.Valid ? null : check.Reason, cancellationToken);
        return new StepResult(
            1,
            new Dictionary<string, object?>
            {
                ["credential_id"] = stored.CredentialId,
                ["provider"] = provider.RouteName,
                ["key_version"] = stored.KeyVersion,
                ["validation_status"] = stored.ValidationStatus,
            },
            stored);
    }
}

/// <summary>
/// <c>integrations.kms_decrypt</c>: decrypts the org's active credential for <c>config.provider</c> into the run's
/// secrets for the next steps; 404 when the org has none. Output: the stored <see cref="IntegrationCredential"/>.
/// </summary>
public sealed class KmsDecryptProcessor(CredentialVault vault, Core.Storage.IControlPlaneStore store) : IProcessor
{
    public string PsType => "integrations.kms_decrypt";

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var provider = IntegrationParameters.Provider(context);
        var org = context.Run.Org ?? throw new InvalidOperationException($"{PsType} needs an org.");
        var stored = await store.FindActiveCredentialAsync(org, provider, cancellationToken)
            ?? throw new ResourceNotFoundException("Integration", $"{org}/{provider.RouteName}");
        var secret = await vault.DecryptAsync(stored, cancellationToken);
        try
        {
            context.Run.Secrets.Set(RunSecrets.Credential, secret);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
        }

        return new StepResult(
            1,
            new Dictionary<string, object?>
            {
                ["credential_id"] = stored.CredentialId,
                ["provider"] = provider.RouteName,
                ["key_version"] = stored.KeyVersion,
            },
            stored);
    }
}

/// <summary>
/// <c>integrations.seed_tables</c>: creates the org's editable tables named in <c>config.tables</c> (price lists,
/// subscription plans) from the shipped defaults when they do not exist yet; existing tables keep the org's edits.
/// Output: rows per table.
/// </summary>
public sealed class SeedTablesProcessor(IEnumerable<IOrgSeedTable> seedTables) : IProcessor
{
    private readonly Dictionary<string, IOrgSeedTable> _tables = seedTables.ToDictionary(t => t.Table, StringComparer.Ordinal);

    public string PsType => "integrations.seed_tables";

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var org = context.Run.Org ?? throw new InvalidOperationException($"{PsType} needs an org.");
        var names = context.Config.TryGetValue("tables", out var v) && v is IEnumerable<object?> list
            ? list.Select(x => x as string ?? throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}): config.tables must be a list of table names.")).ToList()
            : throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}) needs config.tables, a list of table names.");
        var seeded = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var table = _tables.TryGetValue(name, out var t)
                ? t
                : throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}): '{name}' is not a seed table; known: {string.Join(", ", _tables.Keys.Order(StringComparer.Ordinal))}.");
            seeded[name] = await table.SeedIfAbsentAsync(org, cancellationToken);
        }

        return new StepResult(
            seeded.Values.Sum(),
            seeded.ToDictionary(kv => $"rows_{kv.Key}", kv => (object?)kv.Value),
            seeded);
    }
}
