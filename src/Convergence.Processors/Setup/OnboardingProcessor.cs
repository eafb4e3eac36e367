using Convergence.Core.Audit;
using Convergence.Core.Errors;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.Setup;

/// <summary>
/// <c>setup.organizations.onboarding</c>: creates an org's profile, subscription, quota row and first API key, its
/// dataset <c>{org_slug}_{env}</c> and the tables named in <c>config.org_tables</c> — all or nothing.
/// </summary>
/// <remarks>
/// The profile row is inserted first inside the control-plane transaction: it claims the slug (a concurrent
/// onboarding of the same slug waits on it or fails on the key), and the dataset is created only under that claim.
/// Any failure rolls the transaction back and drops a dataset this run created, so no row, file or key is left.
/// </remarks>
internal sealed class OnboardingProcessor(
    IControlPlaneStore store,
    IWarehouse warehouse,
    ApiKeyIssuer keyIssuer,
    ConfigsFolder configs,
    TimeProvider time) : IProcessor
{
    public const string Type = "setup.organizations.onboarding";

    public string PsType => Type;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var request = OrganizationRequest.FromParameters(context.Run.Parameters);
        var errors = request.Validate();
        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        if (!await store.IsBootstrappedAsync(cancellationToken))
        {
            throw OrganizationAdministration.BootstrapRequired();
        }

        var org = OrgSlug.From(request.OrgSlug!);
        var plan = request.Plan;
        var tables = ReadTableList(context).Select(t => TableSchema.Load(configs.Resolve(t))).ToList();
        var dataset = DatasetRef.ForOrg(org, context.Run.Environment);
        var now = time.GetUtcNow();
        var profile = new OrgProfile(org, request.CompanyName!.Trim(), request.AdminEmail!, OrgStatus.Active, plan.Name, dataset.Name, now, now);
        var subscription = OrgSubscription.ForPlan(org, plan, now);

        var datasetCreated = false;
        await using var transaction = await store.BeginTransactionAsync(cancellationToken);
        try
        {
            try
            {
                await transaction.InsertOrganizationAsync(profile, cancellationToken);
            }
            catch (DuplicateRowException)
            {
                throw new ConflictException("Organization exists", $"Organization '{org}' already exists; choose another org_slug.");
            }

            await transaction.InsertSubscriptionAsync(subscription, cancellationToken);
            await transaction.InsertUsageQuotaAsync(OrgUsageQuota.Fresh(org, now), cancellationToken);
            var issued = await keyIssuer.IssueAsync(org, expiresAt: null, cancellationToken);
            await transaction.InsertApiKeyAsync(issued.Record, cancellationToken);

            datasetCreated = await warehouse.CreateDatasetAsync(dataset, cancellationToken);
            var tablesCreated = new List<string>();
            foreach (var table in tables)
            {
                if (await warehouse.EnsureTableAsync(dataset, table, cancellationToken))
                {
                    tablesCreated.Add(table.Name);
                }
            }

            await transaction.RecordAuditAsync(
                context.Run.Actor.Audit("organization.onboard", org, AuditOutcome.Success, now, new Dictionary<string, object?>
                {
                    ["plan"] = plan.Name,
                    ["dataset_id"] = dataset.Name,
                    ["org_api_key_id"] = issued.Record.OrgApiKeyId,
                    ["pipeline_logging_id"] = context.Run.PipelineLoggingId,
                }),
                cancellationToken);
            await transaction.CommitAsync(cancellationToken);

            var result = new OnboardingResult(profile, subscription, issued, dataset.Name, datasetCreated, tablesCreated);
            return new StepResult(1, new Dictionary<string, object?>
            {
                ["dataset_id"] = dataset.Name,
                ["dataset_created"] = datasetCreated,
                ["tables_created"] = tablesCreated,
                ["org_api_key_id"] = issued.Record.OrgApiKeyId,
                ["plan"] = plan.Name,
            }, result);
        }
        catch
        {
            if (datasetCreated)
            {
                await warehouse.DropDatasetAsync(dataset, CancellationToken.None);
            }

            throw;
        }
    }

    private static IEnumerable<string> ReadTableList(StepContext context) =>
        context.Config.TryGetValue("org_tables", out var value) && value is IEnumerable<object?> list
            ? list.Select(v => v as string ?? throw new InvalidOperationException($"Step '{context.Step.StepId}': config.org_tables must be a list of schema paths."))
            : [];
}

/// <summary>What onboarding created. <see cref="ApiKey"/> holds the one-time plain key.</summary>
public sealed record OnboardingResult(
    OrgProfile Profile,
    OrgSubscription Subscription,
    IssuedApiKey ApiKey,
    string DatasetId,
    bool DatasetCreated,
    IReadOnlyList<string> TablesCreated);
