using Convergence.Core.Errors;
using Convergence.Core.Integrations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.Integrations;

/// <summary>
/// <c>integrations.validate_{provider}</c>: checks the run's credential (<see cref="RunSecrets.Credential"/>) live
/// against the provider. Its output is the <see cref="CredentialCheck"/>; its metadata the status and the provider's
/// reason, never the credential.
/// </summary>
/// <remarks>
/// Config: <c>on_invalid</c> — <c>fail</c> (default: an INVALID credential fails the step with a 422 naming
/// <c>credential</c>, so setup stores nothing) or <c>record</c> (the step completes and reports INVALID);
/// <c>credential_step</c> — the step that decrypted a stored credential (<c>integrations.kms_decrypt</c>), whose row then
/// gets this check's status, reason and time.
/// </remarks>
public abstract class CredentialValidationProcessor(IControlPlaneStore store, TimeProvider time) : IProcessor
{
    public abstract string PsType { get; }

    public abstract IntegrationProvider Provider { get; }

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var onInvalid = context.Config.TryGetValue("on_invalid", out var v) && v is string s ? s : "fail";
        if (onInvalid is not ("fail" or "record"))
        {
            throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}): config.on_invalid must be fail or record, not '{onInvalid}'.");
        }

        var check = await CheckAsync(context.Run.Secrets.RequireText(RunSecrets.Credential), cancellationToken);
        var recorded = false;
        if (context.Config.ContainsKey("credential_step"))
        {
            var stored = IntegrationParameters.StoredCredential(context);
            recorded = await store.UpdateCredentialValidationAsync(stored.OrgSlug, stored.CredentialId, check.Status, check.Reason, time.GetUtcNow(), cancellationToken);
        }

        if (check.Status == CredentialStatus.Invalid && onInvalid == "fail")
        {
            throw RequestValidationException.For("credential", check.Reason ?? $"{Provider.RouteName} refused the credential.");
        }

        return new StepResult(
            0,
            new Dictionary<string, object?>
            {
                ["provider"] = Provider.RouteName,
                ["validation_status"] = check.Status,
                ["http_status"] = check.HttpStatus,
                ["reason"] = check.Reason,
                ["status_recorded"] = recorded,
            },
            check);
    }

    protected abstract Task<CredentialCheck> CheckAsync(string credential, CancellationToken cancellationToken);
}

/// <summary>An API-key provider checked with <see cref="ProviderCredentialChecker"/>.</summary>
public abstract class ApiKeyValidationProcessor(ProviderCredentialChecker checker, IControlPlaneStore store, TimeProvider time)
    : CredentialValidationProcessor(store, time)
{
    protected override Task<CredentialCheck> CheckAsync(string credential, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(credential) || credential.Any(char.IsWhiteSpace) || credential.Length > 512)
        {
            throw RequestValidationException.For("credential", $"must be a {Provider.RouteName} API key: one token of at most 512 characters without spaces.");
        }

        return checker.CheckAsync(Provider, credential, cancellationToken);
    }
}

/// <summary><c>integrations.validate_openai</c>: admin keys list one project, other keys list models.</summary>
public sealed class ValidateOpenAiProcessor(ProviderCredentialChecker checker, IControlPlaneStore store, TimeProvider time)
    : ApiKeyValidationProcessor(checker, store, time)
{
    public override string PsType => "integrations.validate_openai";

    public override IntegrationProvider Provider => IntegrationProvider.OpenAi;
}

/// <summary><c>integrations.validate_claude</c>: Anthropic admin keys read the organization, other keys list one model.</summary>
public sealed class ValidateClaudeProcessor(ProviderCredentialChecker checker, IControlPlaneStore store, TimeProvider time)
    : ApiKeyValidationProcessor(checker, store, time)
{
    public override string PsType => "integrations.validate_claude";

    public override IntegrationProvider Provider => IntegrationProvider.Anthropic;
}

/// <summary><c>integrations.validate_deepseek</c>: reads the balance.</summary>
public sealed class ValidateDeepSeekProcessor(ProviderCredentialChecker checker, IControlPlaneStore store, TimeProvider time)
    : ApiKeyValidationProcessor(checker, store, time)
{
    public override string PsType => "integrations.validate_deepseek";

    public override IntegrationProvider Provider => IntegrationProvider.DeepSeek;
}

/// <summary><c>integrations.validate_gcp</c>: a service-account key, exchanged for a token at the allowed endpoint only.</summary>
public sealed class ValidateGcpProcessor(GcpServiceAccountChecker checker, IControlPlaneStore store, TimeProvider time)
    : CredentialValidationProcessor(store, time)
{
    public override string PsType => "integrations.validate_gcp";

    public override IntegrationProvider Provider => IntegrationProvider.Gcp;

    protected override Task<CredentialCheck> CheckAsync(string credential, CancellationToken cancellationToken) =>
        checker.CheckAsync(credential, cancellationToken);
}
