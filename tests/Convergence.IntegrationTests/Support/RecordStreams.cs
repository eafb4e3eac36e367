namespace Convergence.IntegrationTests.Support;

/// <summary>Record streams for bulk-write tests.</summary>
public static class RecordStreams
{
    /// <summary>Yields <paramref name="after"/> rows of <paramref name="rows"/>, then fails as a parser meeting a bad row would.</summary>
    public static IEnumerable<object?[]> Failing(IEnumerable<object?[]> rows, int after)
    {
        var n = 0;
        foreach (var row in rows)
        {
            if (++n > after)
            {
                throw new FormatException($"row {n} does not parse");
            }

            yield return row;
        }
    }
}
