using Convergence.Core.Errors;
using Convergence.Core.Pipelines;
using Convergence.IntegrationTests.Support;
using static Convergence.IntegrationTests.Support.PipelineHarness;

namespace Convergence.IntegrationTests.Pipelines;

/// <summary>
/// Per-step retries (transient failures only), step timeouts and step order, on a manual clock: backoff delays and
/// timeouts elapse only when the test moves the clock, so nothing here waits on real time.
/// </summary>
public sealed class RetryAndTimeoutTests(ManualClockPipelineFixture fixture) : IClassFixture<ManualClockPipelineFixture>
{
    /// <summary>Timers due within this are the run's (backoff delays ≤ 30 s); the maintenance timer is an hour out.</summary>
    private static readonly TimeSpan Horizon = TimeSpan.FromMinutes(2);

    private PipelineHarness Api => fixture.Harness;

    private ManualTimeProvider Clock => Api.ManualClock!;

    [Fact]
    public async Task Flaky_SucceedsOnAttempt3OfMax3_CompletesWithAttempt3AndOneWrite()
    {
        var org = (await Api.OnboardAsync("flaky")).Slug;
        Api.Probe.For(org).Rows = [Row("2025-11-20", "r1", 1)];
        var run = await Api.PrepareAsync(org, TestPipelines.Flaky3, new Dictionary<string, string> { ["date"] = "2025-11-20" });

        var failure = await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon);

        failure.ShouldBeNull();
        var stored = await Api.Store.FindRunAsync(run.PipelineLoggingId, null, CancellationToken.None);
        stored.ShouldNotBeNull().Status.ShouldBe(RunStatus.Completed);
        var step = (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldHaveSingleItem();
        step.Status.ShouldBe(RunStatus.Completed);
        step.Attempt.ShouldBe(3);
        step.RowsProcessed.ShouldBe(1);
        var calls = Api.Probe.For(org).CallsOf(run.PipelineLoggingId);
        calls.Select(c => c.Attempt).ShouldBe([1, 2, 3], "the executor numbers attempts as the processor counts them");
        foreach (var delay in Delays(calls))
        {
            delay.ShouldBeGreaterThan(TimeSpan.Zero, "a retry waits for its backoff on the clock");
            delay.ShouldBeLessThanOrEqualTo(TimeSpan.FromSeconds(30), "max_backoff_seconds caps every delay");
        }

        Api.TableRows(org).ShouldBe(["amount=1|event_date=2025-11-20|id=r1|note="], "the failed attempts' writes were rolled back");
    }

    [Fact]
    public async Task Flaky_BackoffDelays_AreAtLeastBackoffSecondsAndNonDecreasing()
    {
        // Six runs of testing/flaky3 (retry: max_attempts 3, backoff_seconds 1, max_backoff_seconds 30), two delays each.
        var org = (await Api.OnboardAsync("backoff")).Slug;
        var observed = new List<IReadOnlyList<TimeSpan>>();
        for (var i = 0; i < 6; i++)
        {
            var run = await Api.PrepareAsync(org, TestPipelines.Flaky3, new Dictionary<string, string> { ["date"] = "2025-11-20" });
            (await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon)).ShouldBeNull();
            observed.Add(Delays(Api.Probe.For(org).CallsOf(run.PipelineLoggingId)));
        }

        // Regression: Polly's decorrelated jitter drew each delay between 0 and backoff * 2^(n+1), so a retry could come
        // after a fraction of backoff_seconds and a later delay could be shorter than an earlier one.
        var report = string.Join("; ", observed.Select(run => string.Join(" -> ", run.Select(d => $"{d.TotalSeconds:0.000}s"))));
        foreach (var delays in observed)
        {
            delays.Count.ShouldBe(2);
            delays.ShouldAllBe(d => d >= TimeSpan.FromSeconds(1), $"every delay must be at least backoff_seconds (1 s); observed {report}");
            delays[1].ShouldBeGreaterThanOrEqualTo(delays[0], $"backoff must not shrink between attempts; observed {report}");
        }
    }

    [Fact]
    public async Task Flaky_RetryAfter_IsHonouredAndCappedByMaxBackoff()
    {
        // testing/flaky_retry_after: Retry-After 2 s, 4 s and 60 s; max_backoff_seconds 5.
        var org = (await Api.OnboardAsync("retryaft")).Slug;
        var run = await Api.PrepareAsync(org, TestPipelines.FlakyRetryAfter);

        (await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon)).ShouldBeNull();

        var calls = Api.Probe.For(org).CallsOf(run.PipelineLoggingId);
        calls.Select(c => c.Attempt).ShouldBe([1, 2, 3, 4]);
        Delays(calls).ShouldBe([TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(5)]);
        (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldHaveSingleItem().Attempt.ShouldBe(4);
    }

    [Fact]
    public async Task Flaky_MoreFailuresThanMaxAttempts_FailsAfter2AttemptsAndSkipsTheRest()
    {
        var org = (await Api.OnboardAsync("flaky2")).Slug;
        Api.Probe.For(org).Rows = [Row("2025-11-20", "r1", 1)];
        var run = await Api.PrepareAsync(org, TestPipelines.Flaky2, new Dictionary<string, string> { ["date"] = "2025-11-20" });

        var failure = await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon);

        failure.ShouldBeOfType<TransientException>();
        var stored = (await Api.Store.FindRunAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldNotBeNull();
        stored.Status.ShouldBe(RunStatus.Failed);
        stored.ErrorClass.ShouldBe("Transient:TransientException");
        var steps = (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ToDictionary(s => s.StepId);
        steps["flaky"].Status.ShouldBe(RunStatus.Failed);
        steps["flaky"].Attempt.ShouldBe(2);
        steps["flaky"].ErrorClass.ShouldBe("Transient:TransientException");
        steps["after"].Status.ShouldBe(RunStatus.Skipped);
        Api.Probe.For(org).CallsOf(run.PipelineLoggingId).Select(c => c.StepId).ShouldBe(["flaky", "flaky"]);
        Api.TableRows(org).ShouldBeEmpty("neither attempt committed");
    }

    [Fact]
    public async Task Terminal_IsNotRetriedAndLaterStepsAreSkipped()
    {
        var org = (await Api.OnboardAsync("terminal")).Slug;
        var run = await Api.PrepareAsync(org, TestPipelines.Terminal);
        var before = Clock.GetUtcNow();

        var failure = await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon);

        failure.ShouldBeOfType<InvalidOperationException>().Message.ShouldContain("terminal");
        Clock.GetUtcNow().ShouldBe(before, "no backoff was waited for");
        var stored = (await Api.Store.FindRunAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldNotBeNull();
        stored.Status.ShouldBe(RunStatus.Failed);
        stored.ErrorClass.ShouldBe("InvalidOperationException");
        var steps = (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ToDictionary(s => s.StepId);
        steps["first"].Status.ShouldBe(RunStatus.Completed);
        steps["fail"].Status.ShouldBe(RunStatus.Failed);
        steps["fail"].Attempt.ShouldBe(1);
        steps["fail"].ErrorClass.ShouldBe("InvalidOperationException");
        steps["after"].Status.ShouldBe(RunStatus.Skipped);
        steps["last"].Status.ShouldBe(RunStatus.Skipped);
        Api.Probe.For(org).CallsOf(run.PipelineLoggingId).Select(c => c.StepId).ShouldBe(["first", "fail"]);
    }

    [Fact]
    public async Task Timeout_Exceeded_FailsTheStepWithTimeoutRollsBackAndSkipsTheRest()
    {
        var org = (await Api.OnboardAsync("timeout")).Slug;
        Api.Probe.For(org).Rows = [Row("2025-11-20", "slow", 1)];
        var run = await Api.PrepareAsync(org, TestPipelines.Timeout, new Dictionary<string, string> { ["date"] = "2025-11-20" });
        var work = Api.ExecuteInBackground(run);
        await Api.Probe.For(org).Blocked.WaitAsync(Patience);

        // timeout_seconds is 30: at 29 s the step's timer is still a second away.
        Clock.Advance(TimeSpan.FromSeconds(29));
        Clock.NextDueWithin(TimeSpan.FromSeconds(1)).ShouldNotBeNull("the step timeout is still pending");
        work.IsCompleted.ShouldBeFalse();
        Clock.Advance(TimeSpan.FromSeconds(1));
        var failure = await Api.DriveAsync(work, Horizon);

        failure.ShouldBeOfType<TimeoutException>().Message.ShouldContain("timeout_seconds");
        var stored = (await Api.Store.FindRunAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldNotBeNull();
        stored.Status.ShouldBe(RunStatus.Failed);
        stored.ErrorClass.ShouldNotBeNull().ShouldContain("TimeoutException");
        var steps = (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ToDictionary(s => s.StepId);
        steps["slow"].Status.ShouldBe(RunStatus.Failed);
        steps["slow"].ErrorClass.ShouldNotBeNull().ShouldContain("TimeoutException");
        steps["slow"].Attempt.ShouldBe(1);
        steps["after"].Status.ShouldBe(RunStatus.Skipped);
        Api.TableRows(org).ShouldBeEmpty("the timed-out attempt's write was rolled back");
    }

    [Fact]
    public async Task Timeout_WithRetries_IsRetriedAsTransientThenFails()
    {
        // testing/timeout_retry: timeout_seconds 10, retry max_attempts 2; the step never finishes on its own.
        var org = (await Api.OnboardAsync("toretry")).Slug;
        var run = await Api.PrepareAsync(org, TestPipelines.TimeoutRetry);
        var started = Clock.GetUtcNow();

        var failure = await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon);

        failure.ShouldBeOfType<TimeoutException>();
        var calls = Api.Probe.For(org).CallsOf(run.PipelineLoggingId);
        calls.Select(c => c.Attempt).ShouldBe([1, 2], "a timeout is transient, so it is retried");
        (Clock.GetUtcNow() - started).ShouldBeGreaterThanOrEqualTo(TimeSpan.FromSeconds(20), "each attempt had its own full 10 s timeout");
        var step = (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldHaveSingleItem();
        step.Status.ShouldBe(RunStatus.Failed);
        step.Attempt.ShouldBe(2);
        step.ErrorClass.ShouldBe("Transient:TimeoutException");
    }

    [Fact]
    public async Task Cancel_DuringBackoff_StopsRetryingAndCancelsTheRun()
    {
        var org = await Api.OnboardAsync("cancelbo");
        var run = await Api.PrepareAsync(org.Slug, TestPipelines.Flaky3, new Dictionary<string, string> { ["date"] = "2025-11-20" });
        var work = Api.ExecuteInBackground(run);

        // The first attempt failed and Polly is waiting for its backoff on the manual clock.
        await Api.WaitForTimerAsync(Horizon);
        using var client = Api.Factory.OrgClient(org.ApiKey);
        using (var response = await client.PostAsync($"/api/v1/pipelines/runs/{run.PipelineLoggingId}/cancel", null))
        {
            await response.ShouldBeJsonAsync(System.Net.HttpStatusCode.Accepted);
        }

        var failure = await Api.DriveAsync(work, Horizon);

        failure.ShouldBeAssignableTo<OperationCanceledException>();
        Api.Probe.For(org.Slug).CallsOf(run.PipelineLoggingId).Count.ShouldBe(1, "no attempt after the cancel");
        var stored = (await Api.Store.FindRunAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldNotBeNull();
        stored.Status.ShouldBe(RunStatus.Cancelled);
        var step = (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldHaveSingleItem();
        step.Status.ShouldBe(RunStatus.Cancelled);
        step.Attempt.ShouldBe(1);
    }

    [Fact]
    public async Task DependsOn_StepsListedOutOfOrder_RunAfterTheirDependencies()
    {
        var org = (await Api.OnboardAsync("order")).Slug;
        var run = await Api.PrepareAsync(org, TestPipelines.Ordered);

        (await Api.DriveAsync(Api.ExecuteInBackground(run), Horizon)).ShouldBeNull();

        var order = Api.Probe.For(org).CallsOf(run.PipelineLoggingId).Select(c => c.StepId).ToList();
        order.ShouldBe(["extract", "load", "transform", "report"]);
        var pipeline = Api.Factory.Services.GetService(typeof(PipelineCatalog)).ShouldBeOfType<PipelineCatalog>().Get(TestPipelines.Ordered);
        foreach (var step in pipeline.Steps)
        {
            foreach (var dependency in step.DependsOn)
            {
                order.IndexOf(dependency).ShouldBeLessThan(order.IndexOf(step.StepId), $"{step.StepId} depends on {dependency}");
            }
        }

        (await Api.Store.ListStepsAsync(run.PipelineLoggingId, null, CancellationToken.None)).ShouldAllBe(s => s.Status == RunStatus.Completed);
    }

    /// <summary>The clock time between consecutive calls.</summary>
    private static IReadOnlyList<TimeSpan> Delays(IReadOnlyList<ProcessorCall> calls) =>
        [.. calls.Zip(calls.Skip(1), (a, b) => b.At - a.At)];
}
