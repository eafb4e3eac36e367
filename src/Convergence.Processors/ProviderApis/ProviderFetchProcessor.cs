using System.Globalization;
using System.Text.Json;
using Convergence.Core.Integrations;
using Convergence.Core.Pipelines;
using Convergence.Processors.Integrations;
using Convergence.Core.Storage;

namespace Convergence.Processors.ProviderApis;

/// <summary>
/// Base of the steps that fetch a provider's usage or cost report for the run's date slice and replace that slice of
/// the step's destination (<c>write_mode: merge_partition</c> on the usage date).
/// </summary>
/// <remarks>
/// <para>Config: <c>credential_step</c> (required) — the <c>integrations.kms_decrypt</c> step whose credential is used and
/// whose integration is marked INVALID when the provider answers 401/403; <c>page_size</c> — buckets per page
/// (default 31, the providers' maximum for daily buckets).</para>
/// <para>Every page is read before anything is written, and the executor commits the write with the step, so a fetch
/// that fails part-way leaves the table as it was. Rows of buckets outside the slice (a provider answering more than
/// asked) are skipped and counted in the step's metadata (<c>rows_outside_slice_skipped</c>): merge_partition replaces
/// exactly the slice, so other days keep what earlier runs wrote.</para>
/// </remarks>
public abstract class ProviderFetchProcessor(ProviderApiClient client, IControlPlaneStore store, TimeProvider time) : IProcessor
{
    public const int DefaultPageSize = 31;

    public abstract string PsType { get; }

    protected abstract IntegrationProvider Provider { get; }

    protected ProviderApiClient Client => client;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        var destination = context.RequireDestination();
        var stored = IntegrationParameters.StoredCredential(context);
        var request = new FetchRequest(
            context.Run.Slice.StartDate, context.Run.Slice.EndDate, PageSize(context), context.Run.Secrets.RequireText(RunSecrets.Credential));

        FetchResult fetched;
        try
        {
            fetched = await FetchAsync(request, cancellationToken);
        }
        catch (ProviderCredentialRejectedException ex)
        {
            await IntegrationParameters.RecordRejectionAsync(store, stored, ex, time);
            throw;
        }

        var now = time.GetUtcNow();
        var rows = new List<IReadOnlyDictionary<string, object?>>(fetched.Rows.Count);
        var outside = 0;
        foreach (var row in fetched.Rows)
        {
            if (row["usage_date"] is DateOnly day && (day < request.StartDate || day > request.EndDate))
            {
                outside++;
                continue;
            }

            row["ingested_at"] = now;
            row["pipeline_logging_id"] = context.Run.PipelineLoggingId;
            rows.Add(row);
        }

        var written = await destination.WriteRowsAsync(rows, cancellationToken);
        var metadata = new Dictionary<string, object?>(fetched.Metadata, StringComparer.Ordinal)
        {
            ["provider"] = Provider.RouteName,
            ["rows_written"] = written,
            ["rows_outside_slice_skipped"] = outside,
        };
        return new StepResult(written, metadata);
    }

    /// <summary>Fetches every page for the slice and maps it to destination rows (without ingested_at and pipeline_logging_id).</summary>
    protected abstract Task<FetchResult> FetchAsync(FetchRequest request, CancellationToken cancellationToken);

    private int PageSize(StepContext context)
    {
        if (!context.Config.TryGetValue("page_size", out var value) || value is null)
        {
            return DefaultPageSize;
        }

        return int.TryParse(Convert.ToString(value, CultureInfo.InvariantCulture), NumberStyles.None, CultureInfo.InvariantCulture, out var size) && size is >= 1 and <= DefaultPageSize
            ? size
            : throw new InvalidOperationException($"Step '{context.Step.StepId}' ({PsType}): config.page_size must be a whole number from 1 to {DefaultPageSize}, not '{value}'.");
    }

    /// <summary>What to fetch: the slice's first and last day (inclusive), the page size and the credential.</summary>
    public sealed record FetchRequest(DateOnly StartDate, DateOnly EndDate, int PageSize, string Credential)
    {
        public DateTimeOffset Start => new(StartDate.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

        /// <summary>Midnight after the last day: providers take an exclusive end.</summary>
        public DateTimeOffset EndExclusive => new(EndDate.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
    }

    /// <summary>Rows for the destination and facts for the step log.</summary>
    public sealed record FetchResult(IReadOnlyList<Dictionary<string, object?>> Rows, IReadOnlyDictionary<string, object?> Metadata);

    // ---- JSON helpers shared by the providers' mappings: every field but the documented required ones is optional. ----

    protected static string? Text(JsonElement item, string name) =>
        item.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    protected static long Count(JsonElement item, string name) =>
        item.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    protected static long Count(JsonElement item, string parent, string name) =>
        item.TryGetProperty(parent, out var p) && p.ValueKind == JsonValueKind.Object ? Count(p, name) : 0;

    /// <summary>A money amount as an exact decimal from the raw JSON text, whether the provider sent a number or a string.</summary>
    protected static decimal? Amount(JsonElement value, string what)
    {
        var text = value.ValueKind switch
        {
            JsonValueKind.Number => value.GetRawText(),
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Null or JsonValueKind.Undefined => null,
            _ => throw new ProviderResponseException($"{what}: {value.GetRawText()} is not a decimal amount."),
        };
        if (text is null)
        {
            return null;
        }

        // Float allows the exponent a JSON number may carry ("1.5e-3"); out-of-range values fail instead of rounding.
        return decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var amount)
            ? amount
            : throw new ProviderResponseException($"{what}: '{text}' is not a decimal amount in range.");
    }
}
