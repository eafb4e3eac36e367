using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Convergence.IntegrationTests.Support;

/// <summary>Captures every log call of a host: message, structured state, scopes and exception.</summary>
public sealed class InMemoryLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<CapturedLog> _records = new();
    private IExternalScopeProvider? _scopes;

    public IReadOnlyList<CapturedLog> Records => [.. _records];

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
    }

    private static void AddValues(object? value, List<string> into)
    {
        switch (value)
        {
            case null:
                return;
            case string s:
                into.Add(s);
                return;
            case IEnumerable<KeyValuePair<string, object?>> pairs:
                into.Add(Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty);
                foreach (var (key, item) in pairs)
                {
                    into.Add(key);
                    AddValues(item, into);
                }

                return;
            case IEnumerable items:
                foreach (var item in items)
                {
                    AddValues(item, into);
                }

                return;
            default:
                into.Add(Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty);
                return;
        }
    }

    private sealed class CapturingLogger(InMemoryLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => provider._scopes?.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = new List<string>();
            AddValues(state, values);
            var scopes = new List<string>();
            provider._scopes?.ForEachScope((scope, list) => AddValues(scope, list), scopes);
            provider._records.Enqueue(new CapturedLog(category, logLevel, eventId, formatter(state, exception), values, scopes, exception?.ToString()));
        }
    }
}

/// <summary>One log call, flattened to text.</summary>
public sealed record CapturedLog(
    string Category, LogLevel Level, EventId EventId, string Message, IReadOnlyList<string> StateValues, IReadOnlyList<string> ScopeValues, string? Exception)
{
    /// <summary>Every piece of text this call could write to a sink.</summary>
    public IEnumerable<string> AllText() =>
        [Message, .. StateValues, .. ScopeValues, .. Exception is null ? Array.Empty<string>() : [Exception]];
}
