using Convergence.Core.Organizations;

namespace Convergence.Core.Audit;

/// <summary>A row of <c>org_audit_logs</c>: who did what to which org, and how it ended.</summary>
public sealed record AuditEntry(
    string AuditId,
    DateTimeOffset OccurredAt,
    string ActorType,
    string? ActorKeyId,
    string? UserId,
    string Action,
    OrgSlug? OrgSlug,
    string? RequestId,
    string Outcome,
    IReadOnlyDictionary<string, object?>? Details);

/// <summary>Who is acting: the root key, an org key, or the system itself (scheduler).</summary>
public sealed record Actor(string Type, string? KeyId, OrgSlug? Org, string? UserId, string? RequestId)
{
    public const string RootType = "ROOT";
    public const string OrgKeyType = "ORG_KEY";
    public const string SystemType = "SYSTEM";

    public static Actor System(string? requestId = null) => new(SystemType, null, null, null, requestId);

    public AuditEntry Audit(string action, OrgSlug? org, string outcome, DateTimeOffset at, IReadOnlyDictionary<string, object?>? details = null) =>
        new(Guid.CreateVersion7(at).ToString(), at, Type, KeyId, UserId, action, org, RequestId, outcome, details);
}

/// <summary>Outcomes recorded in audit rows.</summary>
public static class AuditOutcome
{
    public const string Success = "SUCCESS";
    public const string Failure = "FAILURE";
    public const string Denied = "DENIED";
}
