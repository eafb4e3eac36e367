using Convergence.Core.Organizations;

namespace Convergence.Core.Scheduling;

/// <summary>A row of <c>org_pipeline_configs</c>: which pipeline an org runs when.</summary>
/// <param name="ConfigId">The schedule's id, unique across orgs.</param>
/// <param name="Pipeline">The pipeline path under <c>configs/</c>, such as <c>openai/usage_cost</c>.</param>
/// <param name="CronSchedule">The 5-field cron expression, evaluated in <paramref name="Timezone"/>.</param>
/// <param name="Timezone">The canonical IANA zone id.</param>
/// <param name="Parameters">Run parameters passed to every scheduled run (never <c>date</c>: the scheduler sets it).</param>
/// <param name="NextRunTime">When the scheduler next runs it (UTC); null while inactive.</param>
/// <param name="LastRunTime">When the scheduler last enqueued it (UTC), if ever.</param>
public sealed record ScheduleConfig(
    string ConfigId,
    OrgSlug OrgSlug,
    string Pipeline,
    string CronSchedule,
    string Timezone,
    IReadOnlyDictionary<string, string> Parameters,
    bool IsActive,
    DateTimeOffset? NextRunTime,
    DateTimeOffset? LastRunTime,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);
