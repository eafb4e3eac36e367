using System.Security.Claims;
using Convergence.Core.Audit;
using Convergence.Core.Organizations;

namespace Convergence.Api.Auth;

/// <summary>Names used by authentication and authorization.</summary>
public static class ConvergenceAuth
{
    public const string Scheme = "Convergence";
    public const string RootKeyHeader = "X-CA-Root-Key";
    public const string ApiKeyHeader = "X-API-Key";
    public const string UserIdHeader = "X-User-ID";

    public const string RootRole = "root";
    public const string OrgRole = "org";
    public const string OrgClaim = "convergence:org";
    public const string KeyIdClaim = "convergence:key_id";

    /// <summary>Policy of root-only routes: org keys get 403.</summary>
    public const string RootPolicy = "root";

    /// <summary>Policy of org routes: the key's org must equal the route's <c>{org_slug}</c>; the root key may act on any org.</summary>
    public const string OrgPolicy = "org";

    /// <summary>Policy of routes that scope by the key itself (run ids): any valid root or org key.</summary>
    public const string AnyKeyPolicy = "any_key";

    public const string OrgRouteValue = "org_slug";

    public static bool IsRoot(this ClaimsPrincipal user) => user.IsInRole(RootRole);

    public static string? OrgOf(this ClaimsPrincipal user) => user.FindFirstValue(OrgClaim);

    /// <summary>The actor for audit rows and run records.</summary>
    public static Actor ToActor(this HttpContext context)
    {
        var user = context.User;
        var userId = context.Request.Headers[UserIdHeader].ToString();
        userId = userId.Length is > 0 and <= 128 && userId.All(c => !char.IsControl(c)) ? userId : null;
        if (user.IsRoot())
        {
            return new Actor(Actor.RootType, null, null, userId, context.TraceIdentifier);
        }

        var org = user.OrgOf();
        return new Actor(Actor.OrgKeyType, user.FindFirstValue(KeyIdClaim), org is null ? null : OrgSlug.From(org), userId, context.TraceIdentifier);
    }
}
