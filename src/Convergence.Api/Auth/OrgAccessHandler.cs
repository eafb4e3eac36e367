using Microsoft.AspNetCore.Authorization;

namespace Convergence.Api.Auth;

/// <summary>The route's <c>{org_slug}</c> must be the caller's org (or the caller holds the root key).</summary>
public sealed class OrgAccessRequirement : IAuthorizationRequirement;

internal sealed class OrgAccessHandler : AuthorizationHandler<OrgAccessRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, OrgAccessRequirement requirement)
    {
        if (context.User.IsRoot())
        {
            context.Succeed(requirement);
        }
        else if (context.Resource is HttpContext http
                 && context.User.OrgOf() is { } org
                 && http.Request.RouteValues.TryGetValue(ConvergenceAuth.OrgRouteValue, out var routeOrg)
                 && string.Equals(routeOrg as string, org, StringComparison.Ordinal))
        {
            context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}
