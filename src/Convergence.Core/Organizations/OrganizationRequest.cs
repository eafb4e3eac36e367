using System.Net.Mail;

namespace Convergence.Core.Organizations;

/// <summary>The body of dry-run and onboarding, as received: every field may be missing or wrong.</summary>
public sealed record OrganizationRequest(string? OrgSlug, string? CompanyName, string? AdminEmail, string? SubscriptionPlan)
{
    public const int MaxCompanyNameLength = 200;
    public const int MaxEmailLength = 254;

    public const string OrgSlugField = "org_slug";
    public const string CompanyNameField = "company_name";
    public const string AdminEmailField = "admin_email";
    public const string SubscriptionPlanField = "subscription_plan";

    public IReadOnlyDictionary<string, string> ToParameters() => new Dictionary<string, string>
    {
        [OrgSlugField] = OrgSlug ?? string.Empty,
        [CompanyNameField] = CompanyName ?? string.Empty,
        [AdminEmailField] = AdminEmail ?? string.Empty,
        [SubscriptionPlanField] = SubscriptionPlan ?? string.Empty,
    };

    public static OrganizationRequest FromParameters(IReadOnlyDictionary<string, string> parameters)
    {
        string? Get(string key) => parameters.TryGetValue(key, out var v) && v.Length > 0 ? v : null;
        return new(Get(OrgSlugField), Get(CompanyNameField), Get(AdminEmailField), Get(SubscriptionPlanField));
    }

    /// <summary>Checks each field; returns the problems by field name (empty when valid).</summary>
    public Dictionary<string, string[]> Validate()
    {
        var errors = new Dictionary<string, string[]>();
        var slug = Organizations.OrgSlug.Parse(OrgSlug);
        if (!slug.IsSuccess)
        {
            errors[OrgSlugField] = [slug.Error!];
        }

        if (string.IsNullOrWhiteSpace(CompanyName))
        {
            errors[CompanyNameField] = ["company_name is required."];
        }
        else if (CompanyName.Length > MaxCompanyNameLength || CompanyName.Any(char.IsControl))
        {
            errors[CompanyNameField] = [$"company_name must be at most {MaxCompanyNameLength} printable characters."];
        }

        if (ValidateEmail(AdminEmail) is { } emailError)
        {
            errors[AdminEmailField] = [emailError];
        }

        if (SubscriptionPlan is not null && !Organizations.SubscriptionPlan.TryGet(SubscriptionPlan, out _))
        {
            errors[SubscriptionPlanField] = [$"'{SubscriptionPlan}' is not a plan; expected one of {Organizations.SubscriptionPlan.Names}."];
        }

        return errors;
    }

    /// <summary>The plan asked for; STARTER when none was given.</summary>
    public SubscriptionPlan Plan => Organizations.SubscriptionPlan.TryGet(SubscriptionPlan ?? Organizations.SubscriptionPlan.Starter.Name, out var plan)
        ? plan
        : throw new InvalidOperationException("Validate the request first.");

    public static string? ValidateEmail(string? email)
    {
        if (string.IsNullOrWhiteSpace(email))
        {
            return "admin_email is required.";
        }

        if (email.Length > MaxEmailLength || !MailAddress.TryCreate(email, out var parsed) || parsed.Address != email || !parsed.Host.Contains('.', StringComparison.Ordinal))
        {
            return "admin_email must be a single address such as admin@example.com.";
        }

        return null;
    }
}
