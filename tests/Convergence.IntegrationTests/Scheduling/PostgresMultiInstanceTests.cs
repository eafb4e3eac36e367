using Convergence.IntegrationTests.Support;
using Npgsql;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>Two instances on one PostgreSQL server: the control plane and the warehouse in one database of the test server.</summary>
public sealed class PostgresMultiInstanceTests : MultiInstanceContract
{
    private readonly string _database = PostgresServer.CreateDatabase("multi");

    protected override IReadOnlyDictionary<string, string> Backend => new Dictionary<string, string>
    {
        ["CONVERGENCE_STORE"] = "postgres",
        ["CONVERGENCE_STORE_CONNECTION"] = _database,
        ["CONVERGENCE_WAREHOUSE"] = "postgres",
        ["CONVERGENCE_WAREHOUSE_CONNECTION"] = _database,
    };

    protected override long CountUnfinishedRuns() =>
        Convert.ToInt64(Rows("SELECT COUNT(*) AS n FROM organizations.org_meta_pipeline_runs WHERE status IN ('RUNNING', 'PENDING')").Single()["n"], System.Globalization.CultureInfo.InvariantCulture);

    protected override IReadOnlyDictionary<string, object?> QueueEntry(string runId) =>
        Rows($"SELECT status, attempts, last_error FROM organizations.org_pipeline_execution_queue WHERE pipeline_logging_id = '{runId}'").ShouldHaveSingleItem();

    protected override IEnumerable<IReadOnlyDictionary<string, object?>> UsageRows(string org) =>
        Rows($"SELECT * FROM \"{org}_local\".openai_usage_daily_raw");

    private IReadOnlyList<IReadOnlyDictionary<string, object?>> Rows(string sql)
    {
        using var connection = new NpgsqlConnection(_database);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        using var reader = command.ExecuteReader();
        return ControlPlaneDb.ReadRows(reader);
    }
}
