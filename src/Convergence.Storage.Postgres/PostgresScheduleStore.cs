using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Dapper;

namespace Convergence.Storage.Postgres;

/// <summary>Schedules in <c>organizations.org_pipeline_configs</c>: timestamps <c>timestamptz</c>, parameters <c>jsonb</c>.</summary>
internal sealed class PostgresScheduleStore(PostgresControlPlaneSource source) : IScheduleStore
{
    private const string Columns =
        "config_id, org_slug, pipeline, cron_schedule, timezone, parameters::text AS parameters, is_active, next_run_time, last_run_time, created_at, updated_at";

    public async Task CreateAsync(ScheduleConfig config, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                INSERT INTO org_pipeline_configs (config_id, org_slug, pipeline, cron_schedule, timezone, parameters, is_active, next_run_time, last_run_time, created_at, updated_at)
                VALUES (@ConfigId, @Org, @Pipeline, @CronSchedule, @Timezone, CAST(@Parameters AS jsonb), @IsActive, @NextRunTime, @LastRunTime, @CreatedAt, @UpdatedAt)
                """,
                Args(config),
                cancellationToken: cancellationToken));
        }
        catch (Exception ex) when (PostgresValues.IsUniqueViolation(ex))
        {
            throw new DuplicateRowException("org_pipeline_configs", ex);
        }
    }

    public async Task<ScheduleConfig?> FindAsync(OrgSlug org, string configId, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ScheduleRow<DateTime?, bool>>(new CommandDefinition(
            $"SELECT {Columns} FROM org_pipeline_configs WHERE org_slug = @org AND config_id = @configId",
            new { org = org.Value, configId }, cancellationToken: cancellationToken));
        return row?.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag);
    }

    public async Task<IReadOnlyList<ScheduleConfig>> ListAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<ScheduleRow<DateTime?, bool>>(new CommandDefinition(
            $"SELECT {Columns} FROM org_pipeline_configs WHERE org_slug = @org ORDER BY created_at, config_id",
            new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag))];
    }

    public async Task<bool> UpdateAsync(ScheduleConfig config, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_pipeline_configs SET pipeline = @Pipeline, cron_schedule = @CronSchedule, timezone = @Timezone, parameters = CAST(@Parameters AS jsonb),
                is_active = @IsActive, next_run_time = @NextRunTime, last_run_time = @LastRunTime, updated_at = @UpdatedAt
            WHERE org_slug = @Org AND config_id = @ConfigId
            """,
            Args(config),
            cancellationToken: cancellationToken)) > 0;
    }

    public async Task<bool> DeleteAsync(OrgSlug org, string configId, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_pipeline_configs WHERE org_slug = @org AND config_id = @configId",
            new { org = org.Value, configId }, cancellationToken: cancellationToken)) > 0;
    }

    public async Task<int> CountAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        return (int)await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM org_pipeline_configs WHERE org_slug = @org", new { org = org.Value }, cancellationToken: cancellationToken));
    }

    public async Task<IReadOnlyList<ScheduleConfig>> ListDueAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        await using var connection = await source.DataSource.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<ScheduleRow<DateTime?, bool>>(new CommandDefinition(
            $"""
            SELECT {Columns} FROM org_pipeline_configs
            WHERE is_active AND next_run_time IS NOT NULL AND next_run_time <= @now
            ORDER BY next_run_time, config_id
            LIMIT @limit
            """,
            new { now = PostgresValues.Timestamp(now), limit }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(PostgresRowValues.Timestamp, PostgresRowValues.Flag))];
    }

    private static object Args(ScheduleConfig c) => new
    {
        c.ConfigId,
        Org = c.OrgSlug.Value,
        c.Pipeline,
        c.CronSchedule,
        c.Timezone,
        Parameters = JsonSerializer.Serialize(c.Parameters),
        c.IsActive,
        NextRunTime = PostgresValues.Timestamp(c.NextRunTime),
        LastRunTime = PostgresValues.Timestamp(c.LastRunTime),
        CreatedAt = PostgresValues.Timestamp(c.CreatedAt),
        UpdatedAt = PostgresValues.Timestamp(c.UpdatedAt),
    };
}
