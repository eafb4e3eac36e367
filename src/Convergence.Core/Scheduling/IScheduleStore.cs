using Convergence.Core.Organizations;

namespace Convergence.Core.Scheduling;

/// <summary>The orgs' schedules (<c>org_pipeline_configs</c> in the central dataset).</summary>
/// <remarks>
/// Every member but <see cref="ListDueAsync"/> is scoped by the org: another org's config id reads as absent and
/// cannot be changed or deleted. Timestamps are stored in UTC.
/// </remarks>
public interface IScheduleStore
{
    /// <summary>Inserts <paramref name="config"/>; its <see cref="ScheduleConfig.ConfigId"/> must be new.</summary>
    Task CreateAsync(ScheduleConfig config, CancellationToken cancellationToken);

    /// <summary>The org's schedule <paramref name="configId"/>, or null (also when it belongs to another org).</summary>
    Task<ScheduleConfig?> FindAsync(OrgSlug org, string configId, CancellationToken cancellationToken);

    /// <summary>The org's schedules, oldest first.</summary>
    Task<IReadOnlyList<ScheduleConfig>> ListAsync(OrgSlug org, CancellationToken cancellationToken);

    /// <summary>Replaces every field of the org's schedule but its id, org and creation time; false when there is no such schedule.</summary>
    Task<bool> UpdateAsync(ScheduleConfig config, CancellationToken cancellationToken);

    /// <summary>Deletes the org's schedule; false when there is no such schedule.</summary>
    Task<bool> DeleteAsync(OrgSlug org, string configId, CancellationToken cancellationToken);

    /// <summary>How many schedules the org has.</summary>
    Task<int> CountAsync(OrgSlug org, CancellationToken cancellationToken);

    /// <summary>
    /// Active schedules of every org with <c>next_run_time &lt;= <paramref name="now"/></c>, by next run time then
    /// config id, at most <paramref name="limit"/> (the scheduler's trigger).
    /// </summary>
    Task<IReadOnlyList<ScheduleConfig>> ListDueAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken);
}
