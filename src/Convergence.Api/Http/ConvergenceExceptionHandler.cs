using System.Text.Json;
using Convergence.Core.Configuration;
using Convergence.Core.Errors;
using Microsoft.AspNetCore.Diagnostics;

namespace Convergence.Api.Http;

/// <summary>
/// The one place exceptions become HTTP answers: expected failures map to 4xx/503 problem details naming what was
/// wrong and where; anything else is a 500 whose details stay in the log.
/// </summary>
internal sealed partial class ConvergenceExceptionHandler(ILogger<ConvergenceExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && context.RequestAborted.IsCancellationRequested)
        {
            return true; // The client went away; there is nobody to answer.
        }

        var (status, title, detail, extensions) = Map(exception, FieldTypeResolver(context));
        var retryAfter = exception switch
        {
            DependencyUnavailableException d => d.RetryAfter,
            TransientException t => t.RetryAfter,
            QuotaExceededException q => q.RetryAfter,
            _ => null,
        };
        if (retryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (status >= 500)
        {
            LogUnhandled(logger, exception, context.Request.Method, context.Request.Path.Value ?? "/");
        }

        await Problems.WriteAsync(context, status, title, detail, extensions);
        return true;
    }

    internal static (int Status, string Title, string Detail, Dictionary<string, object?>? Extensions) Map(Exception exception, Func<string, Type?>? fieldType = null) => exception switch
    {
        RequestValidationException v => (422, v.Title, "One or more fields are invalid; see errors.", new() { ["errors"] = v.Errors }),
        ResourceNotFoundException n => (404, n.Title, n.Message, null),
        ConflictException c => (409, c.Title, c.Message, null),
        QuotaExceededException q => (429, q.Title, q.Message, new() { ["limit"] = q.Limit, ["limit_value"] = q.Value, ["used"] = q.Used, ["resets_at"] = q.ResetsAt }),
        SubscriptionInactiveException s => (403, s.Title, s.Message, null),
        Pipelines.RunInProgressException r => (409, r.Title, r.Message, new() { ["pipeline_logging_id"] = r.Run.PipelineLoggingId, ["run_status"] = r.Run.Status }),
        DataQualityException q => (422, "Data-quality check failed", q.Message, null),
        Apis.ForbiddenException f => (403, f.Title, f.Message, null),
        Apis.InvalidConfigurationException c => (422, c.Title, c.Error.Problem, new() { ["file"] = c.Error.File, ["line"] = c.Error.Line, ["field"] = c.Error.Field }),
        DependencyUnavailableException d => (503, d.Title, d.Message, null),
        Core.Kms.KmsAccessDeniedException k => (503, "KMS unavailable", k.Message, null),
        Core.Kms.KmsProtocolException k => (503, "KMS unavailable", k.Message, null),
        TransientException t => (503, "Dependency unavailable", t.Message, null),
        BadHttpRequestException b when b.InnerException is JsonException json => (400, "Malformed JSON", DescribeJson(json, fieldType), JsonLocation(json)),
        BadHttpRequestException { StatusCode: 413 } => (413, "Request body too large", "The request body exceeds the size limit.", null),
        BadHttpRequestException { StatusCode: 415 } b => (415, "Unsupported media type", b.Message, null),
        BadHttpRequestException b when b.Message.Contains("no body was provided", StringComparison.Ordinal) => (400, "Missing body", "This route needs a JSON body.", null),
        BadHttpRequestException b => (b.StatusCode, "Bad request", Sanitize(b.Message), null),
        JsonException json => (400, "Malformed JSON", DescribeJson(json, fieldType), JsonLocation(json)),
        ConfigurationErrorException c => (500, "Pipeline configuration error", c.Message, null),
        Core.Storage.TableSchemaConflictException t => (500, "Warehouse table differs from its schema", t.Message, new() { ["dataset_id"] = t.Dataset, ["table"] = t.Table }),
        _ => (500, "Internal error", "An unexpected error occurred; quote the X-Request-ID when reporting it.", null),
    };

    private static Dictionary<string, object?> JsonLocation(JsonException json) => new()
    {
        ["field"] = json.Path,
        ["line"] = json.LineNumber is { } l ? l + 1 : null,
        ["position"] = json.BytePositionInLine,
    };

    /// <summary>Describes a JSON error in the caller's terms, without .NET type names.</summary>
    /// <summary>
    /// Maps a JSON path such as <c>$.org_slug</c> to the declared type of that field of the endpoint's body, so a type
    /// error can say what was expected whatever the serializer's message names.
    /// </summary>
    private static Func<string, Type?> FieldTypeResolver(HttpContext context) => path =>
    {
        // The exception handler runs with the endpoint cleared; the feature keeps the one that failed.
        var endpoint = context.Features.Get<IExceptionHandlerFeature>()?.Endpoint ?? context.GetEndpoint();
        var bodyType = endpoint?.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>()?.RequestType;
        if (bodyType is null || !path.StartsWith("$.", StringComparison.Ordinal) || path.IndexOfAny(['.', '['], 2) >= 0)
        {
            return null;
        }

        var options = context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var property = options.GetTypeInfo(bodyType).Properties.FirstOrDefault(p => p.Name == path[2..]);
        return property is null ? null : Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
    };

    private static string DescribeJson(JsonException json, Func<string, Type?>? fieldType)
    {
        var where = json.Path is { Length: > 0 } path ? $" at {path}" : string.Empty;
        var message = json.Message;
        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal))
        {
            var start = message.IndexOf('\'', StringComparison.Ordinal);
            var end = start < 0 ? -1 : message.IndexOf('\'', start + 1);
            var name = end > start ? message[(start + 1)..end] : "?";
            return $"Unknown field '{name}'{where}.";
        }

        if (message.Contains("could not be converted to", StringComparison.Ordinal))
        {
            var declared = json.Path is { } p ? fieldType?.Invoke(p) : null;
            return $"Wrong type{where}: {(declared is null ? ExpectedType(message) : ExpectedType(declared))}.";
        }

        if (message.Contains("missing required properties", StringComparison.Ordinal))
        {
            return $"Required fields are missing{where}.";
        }

        return $"The body is not valid JSON{where}.";
    }

    private static string ExpectedType(Type type) => type switch
    {
        _ when type == typeof(string) => "expected a string",
        _ when type == typeof(bool) => "expected true or false",
        _ when type == typeof(int) || type == typeof(long) => "expected an integer",
        _ when type == typeof(decimal) || type == typeof(double) => "expected a number",
        _ when type == typeof(DateTimeOffset) || type == typeof(DateTime) => "expected an ISO 8601 timestamp",
        _ when type == typeof(DateOnly) => "expected an ISO date (yyyy-MM-dd)",
        _ => "the value has the wrong type",
    };

    private static string ExpectedType(string message) => message switch
    {
        _ when message.Contains("System.String", StringComparison.Ordinal) => "expected a string",
        _ when message.Contains("System.Boolean", StringComparison.Ordinal) => "expected true or false",
        _ when message.Contains("System.Int", StringComparison.Ordinal) || message.Contains("System.Int64", StringComparison.Ordinal) => "expected an integer",
        _ when message.Contains("System.DateTimeOffset", StringComparison.Ordinal) => "expected an ISO 8601 timestamp",
        _ when message.Contains("Convergence.", StringComparison.Ordinal) => "expected a JSON object",
        _ => "the value has the wrong type",
    };

    private static string Sanitize(string message) => message.Length > 300 ? message[..300] : message;

    [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Unhandled error on {Method} {Path}")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string method, string path);
}
