using System.Diagnostics;
using Convergence.Api.Configuration;

namespace Convergence.Api.Http;

/// <summary>
/// Per-request plumbing that runs first: accepts or generates <c>X-Request-ID</c> and echoes it on every response,
/// refuses bodies over the limit with 413 before they are read, and logs the request (errors and slow requests at
/// Information, the rest at Debug).
/// </summary>
/// <remarks>The access log names method, route path, status and duration; never headers or query strings, which can hold keys.</remarks>
internal sealed partial class RequestContextMiddleware(RequestDelegate next, ConvergenceSettings settings, ILogger<RequestContextMiddleware> logger)
{
    public const string RequestIdHeader = "X-Request-ID";

    /// <summary>Routes of usage-event batches, which may carry up to <see cref="UsageEventsMaxBodyBytes"/>.</summary>
    public const string UsageEventsPath = "/api/v1/usage";

    public const long UsageEventsMaxBodyBytes = 16 * 1024 * 1024;

    public async Task InvokeAsync(HttpContext context)
    {
        var requestId = context.Request.Headers[RequestIdHeader].ToString();
        if (!IsAcceptableRequestId(requestId))
        {
            requestId = Guid.CreateVersion7().ToString("N");
        }

        context.TraceIdentifier = requestId;
        context.Response.Headers[RequestIdHeader] = requestId;

        var started = Stopwatch.GetTimestamp();
        // Usage-event batches (up to 10,000 events) may be larger than other bodies.
        var maxBody = context.Request.Path.StartsWithSegments(UsageEventsPath) ? Math.Max(settings.MaxRequestBodyBytes, UsageEventsMaxBodyBytes) : settings.MaxRequestBodyBytes;
        if (context.Request.ContentLength > maxBody)
        {
            await Problems.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "Request body too large", $"The body is {context.Request.ContentLength} bytes; the limit is {maxBody}.");
        }
        else
        {
            if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = maxBody;
            }

            await next(context);
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        if (context.Response.StatusCode >= 400 || elapsed >= SlowRequest)
        {
            LogNotableRequest(logger, context.Request.Method, context.Request.Path.Value ?? "/", context.Response.StatusCode, elapsed.TotalMilliseconds, requestId);
        }
        else
        {
            LogRequest(logger, context.Request.Method, context.Request.Path.Value ?? "/", context.Response.StatusCode, elapsed.TotalMilliseconds, requestId);
        }
    }

    private static bool IsAcceptableRequestId(string id) =>
        id.Length is > 0 and <= 128 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');

    /// <summary>Requests slower than this are logged at Information like errors.</summary>
    private static readonly TimeSpan SlowRequest = TimeSpan.FromSeconds(1);

    // Every request at Debug; errors and slow ones at Information. A per-request line at Information costs a third
    // of the throughput of a small request, and the ingress in front of the service keeps the full access log.
    [LoggerMessage(EventId = 1000, Level = LogLevel.Debug, Message = "{Method} {Path} answered {StatusCode} in {ElapsedMs:0.0} ms (request {RequestId})")]
    private static partial void LogRequest(ILogger logger, string method, string path, int statusCode, double elapsedMs, string requestId);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "{Method} {Path} answered {StatusCode} in {ElapsedMs:0.0} ms (request {RequestId})")]
    private static partial void LogNotableRequest(ILogger logger, string method, string path, int statusCode, double elapsedMs, string requestId);
}
