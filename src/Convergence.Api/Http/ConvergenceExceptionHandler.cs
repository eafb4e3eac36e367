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

        var (status, title, detail, extensions) = Map(exception);
        if (status >= 500)
        {
            LogUnhandled(logger, exception, context.Request.Method, context.Request.Path.Value ?? "/");
        }

        await Problems.WriteAsync(context, status, title, detail, extensions);
        return true;
    }

    internal static (int Status, string Title, string Detail, Dictionary<string, object?>? Extensions) Map(Exception exception) => exception switch
    {
        RequestValidationException v => (422, v.Title, "One or more fields are invalid; see errors.", new() { ["errors"] = v.Errors }),
        ResourceNotFoundException n => (404, n.Title, n.Message, null),
        ConflictException c => (409, c.Title, c.Message, null),
        Pipelines.RunInProgressException r => (409, r.Title, r.Message, new() { ["pipeline_logging_id"] = r.Run.PipelineLoggingId, ["run_status"] = r.Run.Status }),
        DataQualityException q => (422, "Data-quality check failed", q.Message, null),
        Apis.ForbiddenException f => (403, f.Title, f.Message, null),
        Apis.InvalidConfigurationException c => (422, c.Title, c.Error.Problem, new() { ["file"] = c.Error.File, ["line"] = c.Error.Line, ["field"] = c.Error.Field }),
        DependencyUnavailableException d => (503, d.Title, d.Message, null),
        BadHttpRequestException b when b.InnerException is JsonException json => (400, "Malformed JSON", DescribeJson(json), JsonLocation(json)),
        BadHttpRequestException { StatusCode: 413 } => (413, "Request body too large", "The request body exceeds the size limit.", null),
        BadHttpRequestException { StatusCode: 415 } b => (415, "Unsupported media type", b.Message, null),
        BadHttpRequestException b when b.Message.Contains("no body was provided", StringComparison.Ordinal) => (400, "Missing body", "This route needs a JSON body.", null),
        BadHttpRequestException b => (b.StatusCode, "Bad request", Sanitize(b.Message), null),
        JsonException json => (400, "Malformed JSON", DescribeJson(json), JsonLocation(json)),
        ConfigurationErrorException c => (500, "Pipeline configuration error", c.Message, null),
        _ => (500, "Internal error", "An unexpected error occurred; quote the X-Request-ID when reporting it.", null),
    };

    private static Dictionary<string, object?> JsonLocation(JsonException json) => new()
    {
        ["field"] = json.Path,
        ["line"] = json.LineNumber is { } l ? l + 1 : null,
        ["position"] = json.BytePositionInLine,
    };

    /// <summary>Describes a JSON error in the caller's terms, without .NET type names.</summary>
    private static string DescribeJson(JsonException json)
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
            return $"Wrong type{where}: {ExpectedType(message)}.";
        }

        if (message.Contains("missing required properties", StringComparison.Ordinal))
        {
            return $"Required fields are missing{where}.";
        }

        return $"The body is not valid JSON{where}.";
    }

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
