using System.Security.Claims;
using System.Text.Encodings.Web;
using Convergence.Api.Configuration;
using Convergence.Core.Keys;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Convergence.Api.Auth;

/// <summary>
/// Authenticates <c>X-CA-Root-Key</c> (constant-time) and <c>X-API-Key</c> (hash lookup). A missing key leaves the
/// request anonymous; a wrong one fails it. Challenges (401) and forbids (403) answer with problem details.
/// </summary>
internal sealed class ConvergenceAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    RootKey rootKey,
    ApiKeyAuthenticator apiKeys,
    ConvergenceSettings settings,
    IProblemDetailsService problemDetails)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private static readonly ClaimsPrincipal Root = new(new ClaimsIdentity([new Claim(ClaimTypes.Role, ConvergenceAuth.RootRole)], ConvergenceAuth.Scheme));

    private const string FailureReasonItem = "convergence:auth_failure";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (settings.DisableAuth)
        {
            return Success(Root);
        }

        if (Request.Headers.TryGetValue(ConvergenceAuth.RootKeyHeader, out var root))
        {
            return rootKey.Matches(root.ToString()) ? Success(Root) : Failure("The root key is not valid.");
        }

        if (!Request.Headers.TryGetValue(ConvergenceAuth.ApiKeyHeader, out var presented))
        {
            return AuthenticateResult.NoResult();
        }

        var check = await apiKeys.AuthenticateAsync(presented.ToString(), Context.RequestAborted);
        if (check.Key is not { } key)
        {
            return Failure(check.Reason!);
        }

        var identity = new ClaimsIdentity(
            [
                new Claim(ClaimTypes.Role, ConvergenceAuth.OrgRole),
                new Claim(ConvergenceAuth.OrgClaim, key.OrgSlug.Value),
                new Claim(ConvergenceAuth.KeyIdClaim, key.OrgApiKeyId),
            ],
            ConvergenceAuth.Scheme);
        return Success(new ClaimsPrincipal(identity));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var reason = Context.Items[FailureReasonItem] as string
            ?? $"Send the root key in {ConvergenceAuth.RootKeyHeader} or an org key in {ConvergenceAuth.ApiKeyHeader}.";
        return WriteProblemAsync(StatusCodes.Status401Unauthorized, "Unauthorized", reason);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var detail = Context.User.IsRoot()
            ? "The root key cannot perform this action."
            : Context.Request.RouteValues.ContainsKey(ConvergenceAuth.OrgRouteValue) && !IsRootOnlyEndpoint()
                ? "This API key belongs to another organization."
                : "This route needs the root key; org API keys cannot use it.";
        return WriteProblemAsync(StatusCodes.Status403Forbidden, "Forbidden", detail);
    }

    private bool IsRootOnlyEndpoint() =>
        Context.GetEndpoint()?.Metadata.GetOrderedMetadata<Microsoft.AspNetCore.Authorization.IAuthorizeData>()
            .Any(a => a.Policy == ConvergenceAuth.RootPolicy) == true;

    private AuthenticateResult Success(ClaimsPrincipal principal) => AuthenticateResult.Success(new AuthenticationTicket(principal, ConvergenceAuth.Scheme));

    private AuthenticateResult Failure(string reason)
    {
        Context.Items[FailureReasonItem] = reason;
        return AuthenticateResult.Fail(reason);
    }

    private async Task WriteProblemAsync(int status, string title, string detail)
    {
        Response.StatusCode = status;
        await problemDetails.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }
}
