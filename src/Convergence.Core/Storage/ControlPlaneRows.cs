using System.Globalization;
using System.Text.Json;
using Convergence.Core.Audit;
using Convergence.Core.Integrations;
using Convergence.Core.Keys;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Scheduling;

namespace Convergence.Core.Storage;

// The rows the control-plane stores read (Dapper maps them by column name), shared by the adapters so their mappings to
// records cannot drift apart. Each adapter hands values to Dapper its own way, so a row is generic in what differs:
// TTime is the type a timestamp column reads as (string? on SQLite's TEXT, DateTime? on PostgreSQL's timestamptz: the
// nullable type itself, as an unconstrained TTime? does not make a value type nullable), and TFlag the type a boolean
// column reads as (long on SQLite's 0/1 INTEGER, bool on PostgreSQL). ToRecord takes the adapter's conversions.
#pragma warning disable IDE1006, SA1300 // Row classes mirror the snake_case columns they are read from.

/// <summary>Reading a NOT NULL timestamp column through an adapter's timestamp conversion.</summary>
internal static class StoredTimestamp
{
    public static DateTimeOffset Required(DateTimeOffset? value) =>
        value ?? throw new InvalidOperationException("A NOT NULL timestamp column read as NULL.");
}

/// <summary>A row of <c>org_profiles</c>.</summary>
public sealed class ProfileRow<TTime>
{
    public string org_slug { get; set; } = "";
    public string company_name { get; set; } = "";
    public string admin_email { get; set; } = "";
    public string status { get; set; } = "";
    public string subscription_plan { get; set; } = "";
    public string dataset_id { get; set; } = "";
    public TTime created_at { get; set; } = default!;
    public TTime updated_at { get; set; } = default!;

    public OrgProfile ToRecord(Func<TTime?, DateTimeOffset?> timestamp) => new(
        OrgSlug.From(org_slug), company_name, admin_email, status, subscription_plan, dataset_id,
        StoredTimestamp.Required(timestamp(created_at)), StoredTimestamp.Required(timestamp(updated_at)));
}

/// <summary>A row of <c>org_subscriptions</c> (also read by the run queue's admission).</summary>
public sealed class SubscriptionRow<TTime>
{
    public string org_slug { get; set; } = "";
    public string plan_name { get; set; } = "";
    public string status { get; set; } = "";
    public long daily_limit { get; set; }
    public long monthly_limit { get; set; }
    public long concurrent_limit { get; set; }
    public TTime? trial_ends_at { get; set; }
    public TTime subscription_start { get; set; } = default!;
    public TTime updated_at { get; set; } = default!;

    public OrgSubscription ToRecord(Func<TTime?, DateTimeOffset?> timestamp) => new(
        OrgSlug.From(org_slug), plan_name, status, (int)daily_limit, (int)monthly_limit, (int)concurrent_limit,
        timestamp(trial_ends_at), StoredTimestamp.Required(timestamp(subscription_start)), StoredTimestamp.Required(timestamp(updated_at)));
}

/// <summary>A row of <c>org_usage_quotas</c>.</summary>
public sealed class QuotaRow<TTime>
{
    public string org_slug { get; set; } = "";
    public string usage_date { get; set; } = "";
    public long pipelines_run_today { get; set; }
    public long pipelines_run_month { get; set; }
    public long concurrent_running { get; set; }
    public TTime last_reset_daily { get; set; } = default!;
    public TTime last_reset_monthly { get; set; } = default!;

    /// <summary>A row from an earlier day reads as zero runs today (the daily reset has not written yet).</summary>
    public OrgUsageQuota ToRecord(DateOnly today, Func<TTime?, DateTimeOffset?> timestamp)
    {
        var date = DateOnly.ParseExact(usage_date, "yyyy-MM-dd", CultureInfo.InvariantCulture);
        return new(OrgSlug.From(org_slug), today, date == today ? (int)pipelines_run_today : 0, (int)pipelines_run_month, (int)concurrent_running,
            StoredTimestamp.Required(timestamp(last_reset_daily)), StoredTimestamp.Required(timestamp(last_reset_monthly)));
    }
}

/// <summary>A row of <c>org_api_keys</c> (<c>scopes</c> read as JSON text).</summary>
public class ApiKeyRow<TTime, TFlag>
{
    public string org_api_key_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string org_api_key_hash { get; set; } = "";
    public string encrypted_org_api_key { get; set; } = "";
    public string fingerprint { get; set; } = "";
    public string scopes { get; set; } = "[]";
    public TFlag is_active { get; set; } = default!;
    public TTime? expires_at { get; set; }
    public TTime created_at { get; set; } = default!;
    public TTime? last_used_at { get; set; }
    public TTime? revoked_at { get; set; }

    public ApiKeyRecord ToRecord(Func<TTime?, DateTimeOffset?> timestamp, Func<TFlag, bool> flag) => new(
        org_api_key_id, OrgSlug.From(org_slug), org_api_key_hash, encrypted_org_api_key, fingerprint,
        JsonSerializer.Deserialize<List<string>>(scopes) ?? [], flag(is_active), timestamp(expires_at),
        StoredTimestamp.Required(timestamp(created_at)), timestamp(last_used_at), timestamp(revoked_at));
}

/// <summary>A key's row with its org's status, as a key lookup reads it.</summary>
public sealed class ApiKeyLookupRow<TTime, TFlag> : ApiKeyRow<TTime, TFlag>
{
    public string org_status { get; set; } = "";
}

/// <summary>A row of the audit log (<c>details</c> read as JSON text).</summary>
public sealed class AuditRow<TTime>
{
    public string audit_id { get; set; } = "";
    public TTime occurred_at { get; set; } = default!;
    public string actor_type { get; set; } = "";
    public string? actor_key_id { get; set; }
    public string? user_id { get; set; }
    public string action { get; set; } = "";
    public string? org_slug { get; set; }
    public string? request_id { get; set; }
    public string outcome { get; set; } = "";
    public string? details { get; set; }

    public AuditEntry ToRecord(Func<TTime?, DateTimeOffset?> timestamp) => new(
        audit_id, StoredTimestamp.Required(timestamp(occurred_at)), actor_type, actor_key_id, user_id, action,
        org_slug is null ? null : OrgSlug.From(org_slug), request_id, outcome,
        details is null ? null : JsonSerializer.Deserialize<Dictionary<string, object?>>(details));
}

/// <summary>A row of <c>org_meta_pipeline_runs</c> (the columns of <see cref="RunRows.Columns"/> and <c>cancel_requested_at</c>).</summary>
public sealed class RunRow<TTime>
{
    public string pipeline_logging_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string pipeline_id { get; set; } = "";
    public string pipeline_path { get; set; } = "";
    public string trigger { get; set; } = "";
    public string? triggered_by { get; set; }
    public string? org_api_key_id { get; set; }
    public string? request_id { get; set; }
    public string status { get; set; } = "";
    public string? parameters { get; set; }
    public string? resolved_config { get; set; }
    public TTime? start_time { get; set; }
    public TTime? end_time { get; set; }
    public string? error_class { get; set; }
    public string? error_message { get; set; }
    public string? idempotency_key { get; set; }
    public string? worker_id { get; set; }
    public TTime? heartbeat_at { get; set; }
    public TTime? cancel_requested_at { get; set; }
    public long attempt { get; set; }
    public TTime created_at { get; set; } = default!;

    public PipelineRunRecord ToRecord(Func<TTime?, DateTimeOffset?> timestamp) => new(
        pipeline_logging_id, RunRows.OrgFromColumn(org_slug), pipeline_id, pipeline_path, trigger, triggered_by, org_api_key_id, request_id, status,
        parameters is null ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(parameters) ?? [],
        resolved_config, timestamp(start_time), timestamp(end_time), error_class, error_message, (int)attempt,
        StoredTimestamp.Required(timestamp(created_at)), idempotency_key, worker_id, timestamp(heartbeat_at), timestamp(cancel_requested_at));
}

/// <summary>A row of <c>org_meta_step_logs</c>.</summary>
public sealed class StepRow<TTime>
{
    public string step_logging_id { get; set; } = "";
    public string pipeline_logging_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string step_id { get; set; } = "";
    public string ps_type { get; set; } = "";
    public string status { get; set; } = "";
    public TTime? start_time { get; set; }
    public TTime? end_time { get; set; }
    public long? rows_processed { get; set; }
    public long attempt { get; set; }
    public string? metadata { get; set; }
    public string? error_class { get; set; }
    public string? error_message { get; set; }

    public StepLogRecord ToRecord(Func<TTime?, DateTimeOffset?> timestamp) => new(
        step_logging_id, pipeline_logging_id, RunRows.OrgFromColumn(org_slug), step_id, ps_type, status,
        timestamp(start_time), timestamp(end_time), rows_processed, (int)attempt,
        metadata is null ? null : JsonSerializer.Deserialize<Dictionary<string, object?>>(metadata), error_class, error_message);
}

/// <summary>A row of <c>org_meta_dq_results</c>.</summary>
public sealed class DqRow<TTime>
{
    public string dq_result_id { get; set; } = "";
    public string pipeline_logging_id { get; set; } = "";
    public string? step_logging_id { get; set; }
    public string org_slug { get; set; } = "";
    public string table_name { get; set; } = "";
    public string check_name { get; set; } = "";
    public string severity { get; set; } = "";
    public string status { get; set; } = "";
    public string? observed_value { get; set; }
    public string? threshold { get; set; }
    public string? failing_sample { get; set; }
    public TTime created_at { get; set; } = default!;

    public DqResultRecord ToRecord(Func<TTime?, DateTimeOffset?> timestamp) => new(
        dq_result_id, pipeline_logging_id, step_logging_id, RunRows.OrgFromColumn(org_slug), table_name, check_name, severity, status,
        observed_value, threshold, failing_sample, StoredTimestamp.Required(timestamp(created_at)));
}

/// <summary>A row of <c>org_integration_credentials</c>.</summary>
public sealed class CredentialRow<TTime, TFlag>
{
    public string credential_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string provider { get; set; } = "";
    public string credential_name { get; set; } = "";
    public string encrypted_credential { get; set; } = "";
    public string key_version { get; set; } = "";
    public string validation_status { get; set; } = "";
    public TTime? last_validated_at { get; set; }
    public string? last_error { get; set; }
    public string? metadata { get; set; }
    public TFlag is_active { get; set; } = default!;
    public TTime created_at { get; set; } = default!;
    public TTime updated_at { get; set; } = default!;

    public IntegrationCredential ToRecord(Func<TTime?, DateTimeOffset?> timestamp, Func<TFlag, bool> flag) => new(
        credential_id, OrgSlug.From(org_slug), IntegrationProvider.FromStored(provider), credential_name, encrypted_credential, key_version,
        validation_status, timestamp(last_validated_at), last_error,
        metadata is null ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(metadata) ?? [],
        flag(is_active), StoredTimestamp.Required(timestamp(created_at)), StoredTimestamp.Required(timestamp(updated_at)));
}

/// <summary>A row of <c>org_pipeline_configs</c> (<c>parameters</c> read as a JSON object of strings).</summary>
public sealed class ScheduleRow<TTime, TFlag>
{
    public string config_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string pipeline { get; set; } = "";
    public string cron_schedule { get; set; } = "";
    public string timezone { get; set; } = "";
    public string? parameters { get; set; }
    public TFlag is_active { get; set; } = default!;
    public TTime? next_run_time { get; set; }
    public TTime? last_run_time { get; set; }
    public TTime created_at { get; set; } = default!;
    public TTime updated_at { get; set; } = default!;

    public ScheduleConfig ToRecord(Func<TTime?, DateTimeOffset?> timestamp, Func<TFlag, bool> flag) => new(
        config_id, OrgSlug.From(org_slug), pipeline, cron_schedule, timezone,
        parameters is null or "{}" ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(parameters) ?? [],
        flag(is_active), timestamp(next_run_time), timestamp(last_run_time),
        StoredTimestamp.Required(timestamp(created_at)), StoredTimestamp.Required(timestamp(updated_at)));
}

/// <summary>A run-queue entry as a claim reads it.</summary>
public sealed class ClaimRow<TTime>
{
    public string queue_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string pipeline_logging_id { get; set; } = "";
    public long attempts { get; set; }
    public string pipeline { get; set; } = "";
    public string? parameters { get; set; }
    public TTime? scheduled_for { get; set; }
    public TTime created_at { get; set; } = default!;

    /// <summary>What the run row of a scheduled entry is created from (scheduled entries have no run row until claimed).</summary>
    public DeferredRun? Deferred(Func<TTime?, DateTimeOffset?> timestamp) => timestamp(scheduled_for) is not { } at ? null : new DeferredRun(
        pipeline,
        parameters is null ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(parameters) ?? [],
        at,
        StoredTimestamp.Required(timestamp(created_at)));
}

/// <summary>A run-queue entry whose lease has expired, with its run's status.</summary>
public sealed class ExpiredRow<TTime>
{
    public string queue_id { get; set; } = "";
    public string org_slug { get; set; } = "";
    public string pipeline_logging_id { get; set; } = "";
    public long attempts { get; set; }
    public long max_attempts { get; set; }
    public string? lease_owner { get; set; }
    public TTime? lease_expires_at { get; set; }
    public string? run_status { get; set; }
}
#pragma warning restore IDE1006, SA1300
