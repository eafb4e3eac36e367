using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;

namespace Convergence.Processors.Setup;

/// <summary>
/// <c>setup.organizations.dryrun</c>: checks an onboarding request against the platform's state and reports every
/// check. Creates nothing.
/// </summary>
internal sealed class DryRunProcessor(IControlPlaneStore store, IWarehouse warehouse) : IProcessor
{
    public const string Type = "setup.organizations.dryrun";

    public string PsType => Type;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var request = OrganizationRequest.FromParameters(context.Run.Parameters);
        var fieldErrors = request.Validate();
        var checks = new List<DryRunCheck>();

        void Add(string name, string field, string passedMessage)
        {
            checks.Add(fieldErrors.TryGetValue(field, out var problems)
                ? new DryRunCheck(name, false, string.Join(" ", problems))
                : new DryRunCheck(name, true, passedMessage));
        }

        Add("org_slug_format", OrganizationRequest.OrgSlugField, $"'{request.OrgSlug}' matches {OrgSlug.Pattern}.");
        Add("company_name", OrganizationRequest.CompanyNameField, "company_name is present.");
        Add("admin_email", OrganizationRequest.AdminEmailField, "admin_email is a valid address.");
        Add("subscription_plan", OrganizationRequest.SubscriptionPlanField, $"Plan {request.SubscriptionPlan ?? SubscriptionPlan.Starter.Name} exists.");

        var bootstrapped = await store.IsBootstrappedAsync(cancellationToken);
        checks.Add(bootstrapped
            ? new DryRunCheck("bootstrap_done", true, "The central organizations dataset exists.")
            : new DryRunCheck("bootstrap_done", false, "Bootstrap has not been run: POST /api/v1/admin/bootstrap first."));

        if (OrgSlug.TryParse(request.OrgSlug, out var slug))
        {
            if (!bootstrapped)
            {
                checks.Add(new DryRunCheck("org_slug_available", false, "Cannot check before bootstrap."));
            }
            else if (await store.FindOrganizationAsync(slug.Value, cancellationToken) is { } existing)
            {
                checks.Add(new DryRunCheck("org_slug_available", false, $"'{slug}' is already taken (status {existing.Status})."));
            }
            else
            {
                checks.Add(new DryRunCheck("org_slug_available", true, $"'{slug}' is available."));
                var dataset = DatasetRef.ForOrg(slug.Value, context.Run.Environment);
                var exists = await warehouse.DatasetExistsAsync(dataset, cancellationToken);
                checks.Add(new DryRunCheck(
                    "org_dataset",
                    true,
                    exists ? $"Dataset {dataset.Name} already exists and will be reused." : $"Dataset {dataset.Name} will be created."));
            }
        }

        var probe = await warehouse.ProbeAsync(cancellationToken);
        checks.Add(probe.Reachable && probe.Writable
            ? new DryRunCheck("warehouse_writable", true, $"The {warehouse.Kind} warehouse is reachable and writable.")
            : new DryRunCheck("warehouse_writable", false, probe.Problem ?? "The warehouse is not writable."));

        var report = new DryRunReport(request.OrgSlug, checks);
        return new StepResult(0, new Dictionary<string, object?>
        {
            ["checks_passed"] = report.ChecksPassed,
            ["checks_failed"] = report.ChecksFailed,
            ["ready_for_onboarding"] = report.ReadyForOnboarding,
        }, report);
    }
}

/// <summary>One check of a dry-run.</summary>
public sealed record DryRunCheck(string Name, bool Passed, string Message);

/// <summary>What a dry-run found.</summary>
public sealed record DryRunReport(string? OrgSlug, IReadOnlyList<DryRunCheck> Checks)
{
    public int ChecksPassed => Checks.Count(c => c.Passed);

    public int ChecksFailed => Checks.Count(c => !c.Passed);

    public IReadOnlyList<string> Errors => [.. Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Message}")];

    public bool ReadyForOnboarding => ChecksFailed == 0;
}
