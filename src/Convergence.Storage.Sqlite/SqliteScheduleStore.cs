using System.Text.Json;
using Convergence.Core.Organizations;
using Convergence.Core.Scheduling;
using Convergence.Core.Storage;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Convergence.Storage.Sqlite;

/// <summary>Schedules in <c>org_pipeline_configs</c> of the central dataset, stored like the control plane's other rows.</summary>
/// <remarks>
/// Timestamps are <see cref="SqliteSchema.TimestampFormat"/> text (so <c>next_run_time &lt;= @now</c> compares as
/// time), <c>is_active</c> 0/1, <c>parameters</c> a JSON object of strings.
/// </remarks>
internal sealed class SqliteScheduleStore(SqliteDatasetFiles files) : IScheduleStore
{
    private const string Columns =
        "config_id, org_slug, pipeline, cron_schedule, timezone, parameters, is_active, next_run_time, last_run_time, created_at, updated_at";

    public async Task CreateAsync(ScheduleConfig config, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"""
                INSERT INTO org_pipeline_configs ({Columns})
                VALUES (@ConfigId, @Org, @Pipeline, @CronSchedule, @Timezone, @Parameters, @IsActive, @NextRunTime, @LastRunTime, @CreatedAt, @UpdatedAt)
                """,
                Args(config),
                cancellationToken: cancellationToken));
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
        {
            throw new DuplicateRowException("org_pipeline_configs", ex);
        }
    }

    public async Task<ScheduleConfig?> FindAsync(OrgSlug org, string configId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ScheduleRow<string?, long>>(new CommandDefinition(
            $"SELECT {Columns} FROM org_pipeline_configs WHERE org_slug = @org AND config_id = @configId",
            new { org = org.Value, configId }, cancellationToken: cancellationToken));
        return row?.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag);
    }

    public async Task<IReadOnlyList<ScheduleConfig>> ListAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ScheduleRow<string?, long>>(new CommandDefinition(
            $"SELECT {Columns} FROM org_pipeline_configs WHERE org_slug = @org ORDER BY created_at, config_id",
            new { org = org.Value }, cancellationToken: cancellationToken));
        return [.. rows.Select(r => r.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag))];
    }

    public async Task<bool> UpdateAsync(ScheduleConfig config, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE org_pipeline_configs SET pipeline = @Pipeline, cron_schedule = @CronSchedule, timezone = @Timezone, parameters = @Parameters,
                is_active = @IsActive, next_run_time = @NextRunTime, last_run_time = @LastRunTime, updated_at = @UpdatedAt
            WHERE org_slug = @Org AND config_id = @ConfigId
            """,
            Args(config),
            cancellationToken: cancellationToken)) > 0;
    }

    public async Task<bool> DeleteAsync(OrgSlug org, string configId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM org_pipeline_configs WHERE org_slug = @org AND config_id = @configId",
            new { org = org.Value, configId }, cancellationToken: cancellationToken)) > 0;
    }

    public async Task<int> CountAsync(OrgSlug org, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return (int)await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM org_pipeline_configs WHERE org_slug = @org", new { org = org.Value }, cancellationToken: cancellationToken));
    }

    public async Task<IReadOnlyList<ScheduleConfig>> ListDueAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText =
            $"""
            SELECT {Columns} FROM org_pipeline_configs
            WHERE is_active = 1 AND next_run_time IS NOT NULL AND next_run_time <= @now
            ORDER BY next_run_time, config_id
            LIMIT @limit
            """;
        command.Parameters.AddWithValue("@now", SqliteSchema.Timestamp(now));
        command.Parameters.AddWithValue("@limit", limit);

        // Read by position rather than mapped: the trigger reads tens of thousands at once.
        var due = new List<ScheduleConfig>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            due.Add(new ScheduleRow<string?, long>
            {
                config_id = reader.GetString(0),
                org_slug = reader.GetString(1),
                pipeline = reader.GetString(2),
                cron_schedule = reader.GetString(3),
                timezone = reader.GetString(4),
                parameters = reader.IsDBNull(5) ? null : reader.GetString(5),
                is_active = reader.GetInt64(6),
                next_run_time = reader.IsDBNull(7) ? null : reader.GetString(7),
                last_run_time = reader.IsDBNull(8) ? null : reader.GetString(8),
                created_at = reader.GetString(9),
                updated_at = reader.GetString(10),
            }.ToRecord(SqliteRowValues.Timestamp, SqliteRowValues.Flag));
        }

        return due;
    }

    private static object Args(ScheduleConfig c) => new
    {
        c.ConfigId,
        Org = c.OrgSlug.Value,
        c.Pipeline,
        c.CronSchedule,
        c.Timezone,
        Parameters = JsonSerializer.Serialize(c.Parameters),
        IsActive = c.IsActive ? 1 : 0,
        NextRunTime = SqliteSchema.Timestamp(c.NextRunTime),
        LastRunTime = SqliteSchema.Timestamp(c.LastRunTime),
        CreatedAt = SqliteSchema.Timestamp(c.CreatedAt),
        UpdatedAt = SqliteSchema.Timestamp(c.UpdatedAt),
    };

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => files.OpenAsync(DatasetRef.Central, cancellationToken);
}
