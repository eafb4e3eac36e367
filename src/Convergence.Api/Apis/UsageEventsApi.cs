using Convergence.Api.Auth;
using Convergence.Core.Errors;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Convergence.Api.Apis;

/// <summary>
/// <c>POST /api/v1/usage/{org}/events</c>: per-request LLM usage for providers without a usage API (DeepSeek), or usage
/// an org meters itself. Stored in the org's <c>llm_usage_events</c> table; the <c>{provider}.cost</c> steps price them.
/// </summary>
public static class UsageEventsApi
{
    public const int MaxEvents = 10_000;
    private const long MaxTokens = 1_000_000_000_000;
    private static readonly string[] Providers = ["openai", "anthropic", "deepseek"];

    public static IEndpointRouteBuilder MapUsageEventsApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/api/v1/usage/{org_slug}").WithTags("Usage events").RequireAuthorization(ConvergenceAuth.OrgPolicy)
            .MapPost("/events", Post)
            .WithSummary($"Record up to {MaxEvents:N0} usage events; an event id already recorded is counted as a duplicate, not twice.");
        return app;
    }

    public static async Task<Ok<UsageEventsResponse>> Post(
        [FromRoute(Name = "org_slug")] string orgSlug, UsageEventsBody body, HttpContext http, IWarehouse warehouse, TableSchemaCatalog tables,
        [FromServices] DeploymentEnvironment environment, TimeProvider time, CancellationToken cancellationToken)
    {
        var org = RouteArguments.Org(orgSlug);
        var now = time.GetUtcNow();
        var events = Validate(body);
        var dataset = DatasetRef.ForOrg(org, environment);
        if (!await warehouse.DatasetExistsAsync(dataset, cancellationToken))
        {
            throw new ResourceNotFoundException("Organization dataset", dataset.Name);
        }

        var schema = tables.Get(Processors.Llm.LlmCostProcessor.UsageEventsTable);
        await warehouse.EnsureTableAsync(dataset, schema, cancellationToken);
        var known = new HashSet<string>(StringComparer.Ordinal);
        foreach (var chunk in events.Select(e => e.EventId!).Chunk(500))
        {
            var parameters = chunk.Select((id, i) => ("e" + i, (object?)id)).ToDictionary(p => p.Item1, p => p.Item2);
            var rows = await warehouse.QueryAsync(
                dataset,
                new SqlQuery($"SELECT event_id FROM {schema.Name} WHERE event_id IN ({string.Join(", ", parameters.Keys.Select(k => "@" + k))})", parameters),
                chunk.Length,
                cancellationToken);
            known.UnionWith(rows.Select(r => r.RequireText("event_id")));
        }

        var fresh = events.Where(e => !known.Contains(e.EventId!)).ToList();
        if (fresh.Count > 0)
        {
            // Upsert on event_id: a concurrent batch carrying the same event cannot record it twice.
            await using var write = await warehouse.BeginWriteAsync(dataset, schema, new WriteSpec(WriteMode.Upsert, ["event_id"], null, null, null), cancellationToken);
            await write.WriteRowsAsync(fresh.Select(e => e.ToRow(now, http.TraceIdentifier)).ToAsyncEnumerable(), cancellationToken);
            await write.CommitAsync(cancellationToken);
        }

        return TypedResults.Ok(new UsageEventsResponse(org.Value, events.Count, fresh.Count, events.Count - fresh.Count));
    }

    private static List<UsageEventBody> Validate(UsageEventsBody body)
    {
        var events = body.Events ?? throw RequestValidationException.For("events", "is required: a list of usage events.");
        if (events.Count == 0 || events.Count > MaxEvents)
        {
            throw RequestValidationException.For("events", $"must hold 1 to {MaxEvents:N0} events; got {events.Count:N0}.");
        }

        var errors = new Dictionary<string, string[]>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < events.Count && errors.Count < 50; i++)
        {
            var e = events[i];
            var at = $"events[{i}]";
            if (e is null)
            {
                errors[at] = ["must be an object."];
                continue;
            }

            if (string.IsNullOrWhiteSpace(e.EventId) || e.EventId.Length > 128 || e.EventId.Any(char.IsControl))
            {
                errors[$"{at}.event_id"] = ["is required: 1-128 characters without control characters."];
            }
            else if (!seen.Add(e.EventId))
            {
                errors[$"{at}.event_id"] = [$"'{e.EventId}' appears twice in this batch."];
            }

            if (e.Provider is null || !Providers.Contains(e.Provider))
            {
                errors[$"{at}.provider"] = [$"must be one of {string.Join(", ", Providers)}."];
            }

            if (string.IsNullOrWhiteSpace(e.Model) || e.Model.Length > 200 || e.Model.Any(char.IsControl))
            {
                errors[$"{at}.model"] = ["is required: 1-200 characters."];
            }

            if (e.Timestamp is null)
            {
                errors[$"{at}.timestamp"] = ["is required: an ISO 8601 time with offset, such as 2025-11-25T14:03:00Z."];
            }

            foreach (var (name, value) in new[]
            {
                ("uncached_input_tokens", e.UncachedInputTokens), ("cached_input_tokens", e.CachedInputTokens),
                ("cache_write_5m_tokens", e.CacheWrite5mTokens), ("cache_write_1h_tokens", e.CacheWrite1hTokens), ("output_tokens", e.OutputTokens),
            })
            {
                if (value is < 0 or > MaxTokens)
                {
                    errors[$"{at}.{name}"] = [$"must be between 0 and {MaxTokens:N0}."];
                }
            }

            if (e.ProjectId is { Length: > 200 } || e.ApiKeyId is { Length: > 200 })
            {
                errors[$"{at}.{(e.ProjectId is { Length: > 200 } ? "project_id" : "api_key_id")}"] = ["must be at most 200 characters."];
            }
        }

        return errors.Count > 0 ? throw new RequestValidationException(errors) : events;
    }
}

public sealed record UsageEventsBody
{
    public List<UsageEventBody>? Events { get; init; }
}

/// <summary>
/// One model request. Token counts are disjoint: <c>uncached_input_tokens</c> excludes cache reads
/// (<c>cached_input_tokens</c>) and cache writes (<c>cache_write_5m_tokens</c>, <c>cache_write_1h_tokens</c>).
/// </summary>
public sealed record UsageEventBody
{
    public string? EventId { get; init; }

    public string? Provider { get; init; }

    public string? Model { get; init; }

    public DateTimeOffset? Timestamp { get; init; }

    public string? ProjectId { get; init; }

    public string? ApiKeyId { get; init; }

    public bool? Batch { get; init; }

    public long? UncachedInputTokens { get; init; }

    public long? CachedInputTokens { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("cache_write_5m_tokens")]
    public long? CacheWrite5mTokens { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("cache_write_1h_tokens")]
    public long? CacheWrite1hTokens { get; init; }

    public long? OutputTokens { get; init; }

    internal IReadOnlyDictionary<string, object?> ToRow(DateTimeOffset receivedAt, string requestId)
    {
        var at = Timestamp!.Value.ToUniversalTime();
        return new Dictionary<string, object?>
        {
            ["event_id"] = EventId,
            ["provider"] = Provider,
            ["model"] = Model,
            ["occurred_at"] = at,
            ["usage_date"] = DateOnly.FromDateTime(at.UtcDateTime),
            ["project_id"] = ProjectId,
            ["api_key_id"] = ApiKeyId,
            ["batch"] = Batch ?? false,
            ["uncached_input_tokens"] = UncachedInputTokens ?? 0,
            ["cached_input_tokens"] = CachedInputTokens ?? 0,
            ["cache_write_5m_tokens"] = CacheWrite5mTokens ?? 0,
            ["cache_write_1h_tokens"] = CacheWrite1hTokens ?? 0,
            ["output_tokens"] = OutputTokens ?? 0,
            ["received_at"] = receivedAt,
            ["request_id"] = requestId,
        };
    }
}

public sealed record UsageEventsResponse(string OrgSlug, int Received, int Accepted, int Duplicates);
