using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace Convergence.Processors.Gcp;

/// <summary>
/// Runs a record source (one array refilled per record, as <see cref="GcpBillingExportReader.ReadRecords"/> yields them)
/// on its own thread, a bounded number of records ahead of the consumer, so parsing a file and writing its rows use two
/// cores instead of taking turns on one.
/// </summary>
/// <remarks>
/// Records travel in batches of copies; a batch the consumer has moved past is refilled, so memory holds at most
/// <see cref="Batches"/> + 2 batches whatever the file's size. As with the source, a yielded array is valid until the
/// next one is requested. An exception of the source is rethrown to the consumer as thrown, once the batches filled
/// before it are consumed (records of the unfinished batch are dropped: the write fails anyway); when the consumer stops early or fails, the source is cancelled and its thread awaited before the
/// enumeration ends.
/// </remarks>
internal static class RecordReadAhead
{
    /// <summary>Records a batch holds.</summary>
    /// <remarks>
    /// Small on purpose: the records in flight (at most <see cref="Batches"/> + 2 batches, ~1.3 KB of objects a billing
    /// export row) should fit in the GC's gen0 budget, so they die young. With 1,024-record batches (~8 MB in flight)
    /// nearly every record outlived a gen0 collection and was promoted to gen2: a 1M-row load ran 35 gen2 collections
    /// and paused 1.5–2.3 s; with 256 it runs one and pauses ~0.4–0.8 s.
    /// </remarks>
    internal const int BatchSize = 256;

    /// <summary>Filled batches that may wait for the consumer.</summary>
    internal const int Batches = 4;

    /// <summary>
    /// The records of <paramref name="source"/>, read on another thread; <paramref name="source"/> is called there with a
    /// token that is cancelled when the consumer stops or <paramref name="cancellationToken"/> is.
    /// </summary>
    public static IEnumerable<object?[]> Read(Func<CancellationToken, IEnumerable<object?[]>> source, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var filled = new BlockingCollection<Batch>(Batches);
        var free = new ConcurrentBag<Batch>();
        ExceptionDispatchInfo? failure = null;
        var producer = Task.Factory.StartNew(
            () =>
            {
                try
                {
                    var batch = new Batch();
                    foreach (var record in source(stop.Token))
                    {
                        batch.Add(record);
                        if (batch.Count == BatchSize)
                        {
                            filled.Add(batch, stop.Token);
                            batch = free.TryTake(out var recycled) ? recycled : new Batch();
                            batch.Count = 0;
                        }
                    }

                    if (batch.Count > 0)
                    {
                        filled.Add(batch, stop.Token);
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    // The consumer stopped: nothing waits for the rest.
                }
                catch (Exception ex)
                {
                    failure = ExceptionDispatchInfo.Capture(ex);
                }
                finally
                {
                    filled.CompleteAdding();
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        try
        {
            Batch? previous = null;
            foreach (var batch in filled.GetConsumingEnumerable())
            {
                if (previous is not null)
                {
                    free.Add(previous);
                }

                for (var i = 0; i < batch.Count; i++)
                {
                    yield return batch.Records[i];
                }

                previous = batch;
            }

            failure?.Throw();
        }
        finally
        {
            stop.Cancel();
            producer.Wait(CancellationToken.None);
        }
    }

    /// <summary>Up to <see cref="BatchSize"/> record copies; the arrays are reused when the batch is refilled.</summary>
    private sealed class Batch
    {
        public readonly object?[][] Records = new object?[BatchSize][];

        public int Count;

        public void Add(object?[] record)
        {
            var copy = Records[Count] ??= new object?[record.Length];
            Array.Copy(record, copy, record.Length);
            Count++;
        }
    }
}
