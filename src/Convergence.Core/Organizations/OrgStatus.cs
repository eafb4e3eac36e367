namespace Convergence.Core.Organizations;

/// <summary>Lifecycle states of an organization.</summary>
public static class OrgStatus
{
    public const string Active = "ACTIVE";
    public const string Suspended = "SUSPENDED";
    public const string Deleted = "DELETED";

    /// <summary>States an administrator may set with PATCH; DELETED is reached only by offboarding.</summary>
    public static readonly IReadOnlyList<string> Settable = [Active, Suspended];
}

/// <summary>States of a subscription.</summary>
public static class SubscriptionStatus
{
    public const string Active = "ACTIVE";
    public const string Trial = "TRIAL";
    public const string Expired = "EXPIRED";
    public const string Cancelled = "CANCELLED";
}
