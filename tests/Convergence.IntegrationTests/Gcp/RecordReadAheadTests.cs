using Convergence.Processors.Gcp;

namespace Convergence.IntegrationTests.Gcp;

/// <summary>The read-ahead between the export reader and the write: every record in order, errors as thrown, early stops.</summary>
public sealed class RecordReadAheadTests
{
    /// <summary>A source refilling one array, as the export reader does, that may throw after <paramref name="failAfter"/> records.</summary>
    private static IEnumerable<object?[]> Source(int count, CancellationToken cancellationToken, int failAfter = -1)
    {
        var record = new object?[2];
        for (var i = 0; i < count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (i == failAfter)
            {
                throw new InvalidDataException($"bad record {i}");
            }

            record[0] = i;
            record[1] = $"row {i}";
            yield return record;
        }
    }

    [Fact]
    public void EveryRecordArrivesInOrder_AcrossBatchesReused()
    {
        var count = (RecordReadAhead.BatchSize * (RecordReadAhead.Batches + 3)) + 17;
        var seen = 0;
        foreach (var record in RecordReadAhead.Read(token => Source(count, token), CancellationToken.None))
        {
            record[0].ShouldBe(seen);
            record[1].ShouldBe($"row {seen}");
            seen++;
        }

        seen.ShouldBe(count);
    }

    [Fact]
    public void SourceFailure_IsRethrownAsThrown_NoRecordAfterIt()
    {
        var failAfter = (RecordReadAhead.BatchSize * 2) + 5;
        var seen = 0;
        var error = Should.Throw<InvalidDataException>(() =>
        {
            foreach (var unused in RecordReadAhead.Read(token => Source(failAfter * 2, token, failAfter), CancellationToken.None))
            {
                seen++;
            }
        });

        error.Message.ShouldBe($"bad record {failAfter}");
        seen.ShouldBeLessThanOrEqualTo(failAfter);
    }

    [Fact]
    public void ConsumerStoppingEarly_CancelsTheSource()
    {
        var stopped = false;
        IEnumerable<object?[]> Endless(CancellationToken token)
        {
            try
            {
                foreach (var record in Source(int.MaxValue, token))
                {
                    yield return record;
                }
            }
            finally
            {
                stopped = true;
            }
        }

        RecordReadAhead.Read(Endless, CancellationToken.None).Take(10).Count().ShouldBe(10);
        stopped.ShouldBeTrue();
    }

    [Fact]
    public void CancelledRun_Throws()
    {
        using var cancel = new CancellationTokenSource();
        Should.Throw<OperationCanceledException>(() =>
        {
            foreach (var unused in RecordReadAhead.Read(token => Source(int.MaxValue, token), cancel.Token))
            {
                cancel.Cancel();
            }
        });
    }
}
