using Convergence.Api.Auth;
using Convergence.Api.Pricing;
using Convergence.Core.Errors;
using Convergence.Core.Subscriptions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>The org's editable OpenAI subscription plans (per-seat monthly price, effective-dated).</summary>
public static class SubscriptionsApi
{
    public static IEndpointRouteBuilder MapSubscriptionsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/integrations/{org_slug}/openai/subscriptions").WithTags("Subscriptions").RequireAuthorization(ConvergenceAuth.OrgPolicy);
        group.MapGet("", List).WithSummary("The org's OpenAI subscription plans (seeded from the defaults on first use).");
        group.MapPost("", Add).WithSummary("Add a plan from a day.");
        group.MapPut("/{plan_name}", Change).WithSummary("Change a plan from effective_from (default today); earlier months keep the old row.");
        group.MapDelete("/{plan_name}", Delete).WithSummary("Remove every row of a plan.");
        group.MapPost("/reset", Reset).WithSummary("Replace the org's plans with the shipped defaults.");
        return app;
    }

    public static async Task<Ok<OpenAiSubscriptionListResponse>> List(
        [FromRoute(Name = "org_slug")] string orgSlug, SubscriptionTableService subscriptions, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var plans = await subscriptions.ListAsync(org, cancellationToken);
        return TypedResults.Ok(new OpenAiSubscriptionListResponse(org.Value, [.. plans.Select(OpenAiSubscriptionResponse.From)]));
    }

    public static async Task<Created<OpenAiSubscriptionResponse>> Add(
        [FromRoute(Name = "org_slug")] string orgSlug, OpenAiSubscriptionBody body, SubscriptionTableService subscriptions, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var added = await subscriptions.AddAsync(org, body.ToPlan(body.PlanName, subscriptions.Today), cancellationToken);
        return TypedResults.Created($"/api/v1/integrations/{org}/openai/subscriptions/{Uri.EscapeDataString(added.PlanName)}", OpenAiSubscriptionResponse.From(added));
    }

    public static async Task<Ok<OpenAiSubscriptionResponse>> Change(
        [FromRoute(Name = "org_slug")] string orgSlug, [FromRoute(Name = "plan_name")] string planName, OpenAiSubscriptionBody body,
        SubscriptionTableService subscriptions, CancellationToken cancellationToken)
    {
        if (body.PlanName is not null && body.PlanName != planName)
        {
            throw RequestValidationException.For("plan_name", "differs from the plan in the path; leave it out.");
        }

        var changed = await subscriptions.ChangeAsync(RouteArguments.Org(orgSlug), body.ToPlan(planName, subscriptions.Today), cancellationToken);
        return TypedResults.Ok(OpenAiSubscriptionResponse.From(changed));
    }

    public static async Task<Ok<OpenAiSubscriptionDeletedResponse>> Delete(
        [FromRoute(Name = "org_slug")] string orgSlug, [FromRoute(Name = "plan_name")] string planName, SubscriptionTableService subscriptions, CancellationToken cancellationToken) =>
        TypedResults.Ok(new OpenAiSubscriptionDeletedResponse(planName, await subscriptions.DeleteAsync(RouteArguments.Org(orgSlug), planName, cancellationToken)));

    public static async Task<Ok<OpenAiSubscriptionResetResponse>> Reset(
        [FromRoute(Name = "org_slug")] string orgSlug, SubscriptionTableService subscriptions, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        _ = await subscriptions.ListAsync(org, cancellationToken); // creates the table, and 404s for an org without a dataset
        return TypedResults.Ok(new OpenAiSubscriptionResetResponse(org.Value, await subscriptions.ResetAsync(org, cancellationToken)));
    }
}

/// <summary>
/// A plan row to add or change: <c>unit_price</c> per seat per month in <c>currency</c> (default USD),
/// <c>billing_period</c> monthly (default) or annual, <c>seats</c> (default 0: the org does not hold the plan).
/// </summary>
public sealed record OpenAiSubscriptionBody
{
    public string? PlanName { get; init; }

    public string? DisplayName { get; init; }

    public decimal? UnitPrice { get; init; }

    public string? Currency { get; init; }

    public string? BillingPeriod { get; init; }

    public long? Seats { get; init; }

    public DateOnly? EffectiveFrom { get; init; }

    public DateOnly? EffectiveTo { get; init; }

    public string? Notes { get; init; }

    public OpenAiSubscription ToPlan(string? planName, DateOnly today)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(planName))
        {
            errors["plan_name"] = ["is required."];
        }

        if (UnitPrice is null)
        {
            errors["unit_price"] = ["is required (per seat per month, in currency)."];
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        return new OpenAiSubscription(
            planName!, DisplayName, UnitPrice, Currency ?? "USD", BillingPeriod ?? OpenAiSubscription.Monthly, Seats ?? 0,
            EffectiveFrom ?? today, EffectiveTo, Notes);
    }
}

public sealed record OpenAiSubscriptionResponse(
    string PlanName, string? DisplayName, decimal? UnitPrice, string Currency, string BillingPeriod, long Seats,
    DateOnly EffectiveFrom, DateOnly? EffectiveTo, string? Notes)
{
    public static OpenAiSubscriptionResponse From(OpenAiSubscription p) =>
        new(p.PlanName, p.DisplayName, p.UnitPrice, p.Currency, p.BillingPeriod, p.Seats, p.EffectiveFrom, p.EffectiveTo, p.Notes);
}

public sealed record OpenAiSubscriptionListResponse(string OrgSlug, IReadOnlyList<OpenAiSubscriptionResponse> Subscriptions);

public sealed record OpenAiSubscriptionDeletedResponse(string PlanName, int RowsDeleted);

public sealed record OpenAiSubscriptionResetResponse(string OrgSlug, int Subscriptions);
