using System.Collections.Concurrent;
using System.Globalization;
using Convergence.Core.Errors;
using Convergence.Core.Pipelines;
using Convergence.Processors;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Support;

/// <summary>One call of a test processor: which run, step and attempt, and the app clock's time then.</summary>
public sealed record ProcessorCall(string PipelineLoggingId, string StepId, string PsType, int Attempt, DateTimeOffset At);

/// <summary>
/// What the test processors of one factory do and saw, per org (tests isolate themselves by using their own org):
/// the rows they write, every call, and the gates of <c>test.block</c>.
/// </summary>
public sealed class PipelineProbe
{
    private readonly ConcurrentDictionary<string, OrgProbe> _orgs = new(StringComparer.Ordinal);

    public OrgProbe For(string org) => _orgs.GetOrAdd(org, _ => new OrgProbe());
}

public sealed class OrgProbe
{
    private readonly ConcurrentQueue<ProcessorCall> _calls = new();
    private readonly ConcurrentDictionary<string, int> _attempts = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _blocked = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile IReadOnlyList<IReadOnlyDictionary<string, object?>> _rows = [];
    private volatile TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The rows <c>test.rows</c>, <c>test.fail_after_write</c>, <c>test.flaky</c> and <c>test.block</c> write (unless their config has <c>rows</c>).</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, object?>> Rows
    {
        get => _rows;
        set => _rows = value;
    }

    public IReadOnlyList<ProcessorCall> Calls => [.. _calls];

    /// <summary>Completes when a <c>test.block</c> step of this org has written its rows and started waiting.</summary>
    public Task Blocked => _blocked.Task;

    /// <summary>Lets every waiting (and future) <c>test.block</c> step of this org finish.</summary>
    public void Release() => _release.TrySetResult();

    public IReadOnlyList<ProcessorCall> CallsOf(string pipelineLoggingId) => [.. _calls.Where(c => c.PipelineLoggingId == pipelineLoggingId)];

    internal int NextAttempt(string runId, string stepId) => _attempts.AddOrUpdate($"{runId}/{stepId}", 1, (_, n) => n + 1);

    internal void Record(ProcessorCall call) => _calls.Enqueue(call);

    internal void SignalBlocked() => _blocked.TrySetResult();

    internal Task ReleaseTask => _release.Task;
}

/// <summary>Shared plumbing of the test processors.</summary>
public abstract class TestProcessor(PipelineProbe probe, TimeProvider time) : IProcessor
{
    public abstract string PsType { get; }

    public abstract Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken);

    protected OrgProbe Probe(StepContext context) => probe.For(context.Run.Org?.Value ?? "-");

    /// <summary>Records the call; returns this processor's own count of calls for the run's step (1, 2, …).</summary>
    protected int Record(StepContext context)
    {
        var org = Probe(context);
        var count = org.NextAttempt(context.Run.PipelineLoggingId, context.Step.StepId);
        org.Record(new ProcessorCall(context.Run.PipelineLoggingId, context.Step.StepId, PsType, context.Attempt, time.GetUtcNow()));
        return count;
    }

    /// <summary>Writes the config's <c>rows</c> (a list of maps), else the probe's rows, when the step has a destination.</summary>
    protected async Task<long> WriteAsync(StepContext context, CancellationToken cancellationToken)
    {
        if (context.Destination is null)
        {
            return 0;
        }

        var rows = context.Config.TryGetValue("rows", out var configured) && configured is IEnumerable<object?> list
            ? [.. list.OfType<IReadOnlyDictionary<string, object?>>()]
            : Probe(context).Rows;
        return await context.RequireDestination().WriteRowsAsync(rows, cancellationToken);
    }

    protected static int IntConfig(StepContext context, string key, int fallback) =>
        context.Config.TryGetValue(key, out var value) && value is not null
            ? int.Parse(Convert.ToString(value, CultureInfo.InvariantCulture)!, CultureInfo.InvariantCulture)
            : fallback;
}

/// <summary><c>test.rows</c>: writes its rows to the destination (if any) and succeeds.</summary>
public sealed class RowsTestProcessor(PipelineProbe probe, TimeProvider time) : TestProcessor(probe, time)
{
    public override string PsType => "test.rows";

    public override async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        Record(context);
        return StepResult.Of(await WriteAsync(context, cancellationToken));
    }
}

/// <summary>
/// <c>test.flaky</c>: writes its rows, then throws a <see cref="TransientException"/> on its first
/// <c>config.failures</c> calls for a run (with <c>config.retry_after_seconds[i]</c> as RetryAfter when given), then succeeds.
/// </summary>
public sealed class FlakyTestProcessor(PipelineProbe probe, TimeProvider time) : TestProcessor(probe, time)
{
    public override string PsType => "test.flaky";

    public override async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var call = Record(context);
        var written = await WriteAsync(context, cancellationToken);
        if (call <= IntConfig(context, "failures", 0))
        {
            TimeSpan? retryAfter = context.Config.TryGetValue("retry_after_seconds", out var waits) && waits is IReadOnlyList<object?> list && call <= list.Count
                ? TimeSpan.FromSeconds(double.Parse(Convert.ToString(list[call - 1], CultureInfo.InvariantCulture)!, CultureInfo.InvariantCulture))
                : null;
            throw new TransientException($"test.flaky: transient failure on call {call}.", retryAfter: retryAfter);
        }

        return StepResult.Of(written, ("calls", call));
    }
}

/// <summary><c>test.fail_after_write</c>: writes its rows, then fails with a terminal exception.</summary>
public sealed class FailAfterWriteTestProcessor(PipelineProbe probe, TimeProvider time) : TestProcessor(probe, time)
{
    public override string PsType => "test.fail_after_write";

    public override async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        Record(context);
        var written = await WriteAsync(context, cancellationToken);
        throw new InvalidOperationException($"test.fail_after_write: failing after writing {written} row(s).");
    }
}

/// <summary>
/// <c>test.block</c>: writes its rows, signals <see cref="OrgProbe.Blocked"/>, then waits for
/// <see cref="OrgProbe.Release"/> or cancellation (a timeout or a cancel request).
/// </summary>
public sealed class BlockTestProcessor(PipelineProbe probe, TimeProvider time) : TestProcessor(probe, time)
{
    public override string PsType => "test.block";

    public override async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        Record(context);
        var written = await WriteAsync(context, cancellationToken);
        var org = Probe(context);
        org.SignalBlocked();
        await Task.WhenAny(org.ReleaseTask, Task.Delay(Timeout.Infinite, cancellationToken));
        cancellationToken.ThrowIfCancellationRequested();
        return StepResult.Of(written);
    }
}

/// <summary><c>test.terminal</c>: fails at once with an exception that is not transient.</summary>
public sealed class TerminalTestProcessor(PipelineProbe probe, TimeProvider time) : TestProcessor(probe, time)
{
    public override string PsType => "test.terminal";

    public override Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        Record(context);
        throw new InvalidOperationException("test.terminal: a terminal failure.");
    }
}

public static class TestProcessorRegistration
{
    /// <summary>Registers the test processors and the probe they report to.</summary>
    public static IServiceCollection AddTestProcessors(this IServiceCollection services, PipelineProbe probe)
    {
        services.AddSingleton(probe);
        return services
            .AddProcessor<RowsTestProcessor>()
            .AddProcessor<FlakyTestProcessor>()
            .AddProcessor<FailAfterWriteTestProcessor>()
            .AddProcessor<BlockTestProcessor>()
            .AddProcessor<TerminalTestProcessor>();
    }
}
