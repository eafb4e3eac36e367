using System.Text.Json.Serialization;
using Convergence.Api.Auth;
using Convergence.Api.Pricing;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pricing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>The org's editable price lists for OpenAI, Anthropic and DeepSeek (USD per million tokens, effective-dated).</summary>
public static class PricingApi
{
    public static IEndpointRouteBuilder MapPricingApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/integrations/{org_slug}/{provider}/pricing").WithTags("Pricing").RequireAuthorization(ConvergenceAuth.OrgPolicy);
        group.MapGet("", List).WithSummary("The org's price list (seeded from the defaults on first use).");
        group.MapPost("", Add).WithSummary("Add a model price from a day.");
        group.MapPut("/{model_id}", Change).WithSummary("Change a model's price from effective_from (default today); earlier usage keeps the old price.");
        group.MapDelete("/{model_id}", Delete).WithSummary("Remove every price row of a model.");
        group.MapPost("/reset", Reset).WithSummary("Replace the org's list with the shipped defaults.");
        return app;
    }

    public static async Task<Ok<PriceListResponse>> List(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, PriceTableService prices, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var list = await prices.ListAsync(org, provider, cancellationToken);
        return TypedResults.Ok(new PriceListResponse(org.Value, provider, [.. list.Select(PriceResponse.From)]));
    }

    public static async Task<Created<PriceResponse>> Add(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, PriceBody body, PriceTableService prices, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var added = await prices.AddAsync(org, provider, body.ToPrice(body.ModelId, prices.Today), cancellationToken);
        return TypedResults.Created($"/api/v1/integrations/{org}/{provider}/pricing/{Uri.EscapeDataString(added.ModelId)}", PriceResponse.From(added));
    }

    public static async Task<Ok<PriceResponse>> Change(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, [FromRoute(Name = "model_id")] string modelId, PriceBody body,
        PriceTableService prices, CancellationToken cancellationToken)
    {
        if (body.ModelId is not null && body.ModelId != modelId)
        {
            throw RequestValidationException.For("model_id", "differs from the model in the path; leave it out.");
        }

        var changed = await prices.ChangeAsync(RouteArguments.Org(orgSlug), provider, body.ToPrice(modelId, prices.Today), cancellationToken);
        return TypedResults.Ok(PriceResponse.From(changed));
    }

    public static async Task<Ok<PriceDeletedResponse>> Delete(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, [FromRoute(Name = "model_id")] string modelId, PriceTableService prices, CancellationToken cancellationToken) =>
        TypedResults.Ok(new PriceDeletedResponse(modelId, await prices.DeleteAsync(RouteArguments.Org(orgSlug), provider, modelId, cancellationToken)));

    public static async Task<Ok<PriceResetResponse>> Reset(
        [FromRoute(Name = "org_slug")] string orgSlug, string provider, PriceTableService prices, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        _ = await prices.ListAsync(org, provider, cancellationToken); // creates the table, and 404s for an unknown provider
        return TypedResults.Ok(new PriceResetResponse(org.Value, provider, await prices.ResetAsync(org, provider, cancellationToken)));
    }
}

/// <summary>A price to add or change. Prices are USD (or <c>currency</c>) per million tokens; empty ones are unpublished.</summary>
public sealed record PriceBody
{
    public string? ModelId { get; init; }

    public string? Mode { get; init; }

    public decimal? InputPerMtok { get; init; }

    public decimal? CachedInputPerMtok { get; init; }

    [JsonPropertyName("cache_write_5m_per_mtok")]
    public decimal? CacheWrite5mPerMtok { get; init; }

    [JsonPropertyName("cache_write_1h_per_mtok")]
    public decimal? CacheWrite1hPerMtok { get; init; }

    public decimal? OutputPerMtok { get; init; }

    public decimal? BatchInputPerMtok { get; init; }

    public decimal? BatchOutputPerMtok { get; init; }

    public string? Currency { get; init; }

    public DateOnly? EffectiveFrom { get; init; }

    public DateOnly? EffectiveTo { get; init; }

    public ModelPrice ToPrice(string? modelId, DateOnly today)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(modelId))
        {
            errors["model_id"] = ["is required."];
        }

        if (InputPerMtok is null)
        {
            errors["input_per_mtok"] = ["is required."];
        }

        if (OutputPerMtok is null)
        {
            errors["output_per_mtok"] = ["is required."];
        }

        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }

        return new ModelPrice(
            modelId!, Mode, InputPerMtok!.Value, CachedInputPerMtok, CacheWrite5mPerMtok, CacheWrite1hPerMtok, OutputPerMtok!.Value,
            BatchInputPerMtok, BatchOutputPerMtok, Currency ?? "USD", EffectiveFrom ?? today, EffectiveTo, "api");
    }
}

public sealed record PriceResponse(
    string ModelId,
    string? Mode,
    decimal InputPerMtok,
    decimal? CachedInputPerMtok,
    [property: JsonPropertyName("cache_write_5m_per_mtok")] decimal? CacheWrite5mPerMtok,
    [property: JsonPropertyName("cache_write_1h_per_mtok")] decimal? CacheWrite1hPerMtok,
    decimal OutputPerMtok, decimal? BatchInputPerMtok, decimal? BatchOutputPerMtok, string Currency, DateOnly EffectiveFrom, DateOnly? EffectiveTo, string? Source)
{
    public static PriceResponse From(ModelPrice p) => new(
        p.ModelId, p.Mode, p.InputPerMtok, p.CachedInputPerMtok, p.CacheWrite5mPerMtok, p.CacheWrite1hPerMtok, p.OutputPerMtok,
        p.BatchInputPerMtok, p.BatchOutputPerMtok, p.Currency, p.EffectiveFrom, p.EffectiveTo, p.Source);
}

public sealed record PriceListResponse(string OrgSlug, string Provider, IReadOnlyList<PriceResponse> Prices);

public sealed record PriceDeletedResponse(string ModelId, int RowsDeleted);

public sealed record PriceResetResponse(string OrgSlug, string Provider, int Prices);
