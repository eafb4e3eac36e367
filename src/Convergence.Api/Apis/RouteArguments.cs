using Convergence.Core.Errors;
using Convergence.Core.Organizations;

namespace Convergence.Api.Apis;

/// <summary>Parsing of route values shared by the APIs.</summary>
internal static class RouteArguments
{
    /// <summary>A route <c>{org_slug}</c> that is not a valid slug names no organization: 404, never a storage call.</summary>
    public static OrgSlug Org(string text) =>
        OrgSlug.TryParse(text, out var org) ? org.Value : throw new ResourceNotFoundException("Organization", text.Length > 60 ? text[..60] : text);
}
