namespace Convergence.IntegrationTests.Support;

/// <summary>
/// The test pipelines under <c>configs/testing/</c> and their table schema, added to a copy of the repository's
/// configs by <see cref="PipelineHarness"/>. Every ps_type here is a test processor (<see cref="TestProcessorRegistration"/>).
/// </summary>
public static class TestPipelines
{
    public const string Table = "test_events";

    /// <summary>Write modes and the pipelines testing them: <c>testing/{mode}_rows</c> (test.rows) and <c>testing/{mode}_fail</c> (test.fail_after_write).</summary>
    public static readonly IReadOnlyList<string> WriteModes = ["append", "truncate", "merge_partition", "upsert", "replace_partitions"];

    public const string Rows = "testing/rows";
    public const string DqError = "testing/dq_error";
    public const string DqWarn = "testing/dq_warn";
    public const string Flaky3 = "testing/flaky3";
    public const string Flaky2 = "testing/flaky2";
    public const string FlakyRetryAfter = "testing/flaky_retry_after";
    public const string Terminal = "testing/terminal";
    public const string Timeout = "testing/timeout";
    public const string Ordered = "testing/ordered";
    public const string Block = "testing/block";
    public const string TimeoutRetry = "testing/timeout_retry";
    public const string SqlMerge = "testing/sql_merge";
    public const string SqlUpsert = "testing/sql_upsert";
    public const string SqlPartialColumns = "testing/sql_partial_columns";

    public static string RowsPipeline(string mode) => $"testing/{mode}_rows";

    public static string FailPipeline(string mode) => $"testing/{mode}_fail";

    /// <summary>Files relative to <c>configs/</c> → text.</summary>
    public static IReadOnlyDictionary<string, string> Files { get; } = BuildFiles();

    private static Dictionary<string, string> BuildFiles()
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["testing/schemas/test_events.json"] = """
                {
                  "table": "test_events",
                  "description": "Rows written by the test processors.",
                  "columns": [
                    { "name": "event_date", "type": "DATE", "mode": "REQUIRED" },
                    { "name": "id", "type": "STRING", "mode": "REQUIRED" },
                    { "name": "amount", "type": "INT64", "mode": "NULLABLE" },
                    { "name": "note", "type": "STRING", "mode": "NULLABLE" }
                  ]
                }
                """,
            ["testing/rows.yml"] = """
                pipeline_id: "{org_slug}-testing-rows"
                description: Writes the probe's rows (test.rows) by appending
                steps:
                  - step_id: write_rows
                    ps_type: test.rows
                    destination: { table: test_events, write_mode: append }
                """,
            ["testing/dq_error.yml"] = """
                pipeline_id: "{org_slug}-testing-dq-error"
                steps:
                  - step_id: write_rows
                    ps_type: test.rows
                    destination: { table: test_events, write_mode: append }
                    dq_checks:
                      - { check: row_count_min, value: 1, severity: error }
                      - { check: not_null, column: amount, severity: error }
                  - step_id: after
                    ps_type: test.rows
                    depends_on: [write_rows]
                """,
            ["testing/dq_warn.yml"] = """
                pipeline_id: "{org_slug}-testing-dq-warn"
                steps:
                  - step_id: write_rows
                    ps_type: test.rows
                    destination: { table: test_events, write_mode: append }
                    dq_checks:
                      - { check: row_count_min, value: 1, severity: error }
                      - { check: not_null, column: amount, severity: warn }
                """,
            ["testing/flaky3.yml"] = """
                pipeline_id: "{org_slug}-testing-flaky3"
                steps:
                  - step_id: flaky
                    ps_type: test.flaky
                    retry: { max_attempts: 3, backoff_seconds: 1, max_backoff_seconds: 30 }
                    destination: { table: test_events, write_mode: append }
                    config: { failures: "2" }
                """,
            ["testing/flaky2.yml"] = """
                pipeline_id: "{org_slug}-testing-flaky2"
                steps:
                  - step_id: flaky
                    ps_type: test.flaky
                    retry: { max_attempts: 2, backoff_seconds: 1, max_backoff_seconds: 30 }
                    destination: { table: test_events, write_mode: append }
                    config: { failures: "2" }
                  - step_id: after
                    ps_type: test.rows
                    depends_on: [flaky]
                """,
            ["testing/flaky_retry_after.yml"] = """
                pipeline_id: "{org_slug}-testing-flaky-retry-after"
                steps:
                  - step_id: flaky
                    ps_type: test.flaky
                    retry: { max_attempts: 4, backoff_seconds: 1, max_backoff_seconds: 5 }
                    config: { failures: "3", retry_after_seconds: ["2", "4", "60"] }
                """,
            ["testing/terminal.yml"] = """
                pipeline_id: "{org_slug}-testing-terminal"
                steps:
                  - step_id: first
                    ps_type: test.rows
                  - step_id: fail
                    ps_type: test.terminal
                    depends_on: [first]
                    retry: { max_attempts: 3, backoff_seconds: 1 }
                  - step_id: after
                    ps_type: test.rows
                    depends_on: [fail]
                  - step_id: last
                    ps_type: test.rows
                    depends_on: [after]
                """,
            ["testing/timeout.yml"] = """
                pipeline_id: "{org_slug}-testing-timeout"
                steps:
                  - step_id: slow
                    ps_type: test.block
                    timeout_seconds: 30
                    destination: { table: test_events, write_mode: append }
                  - step_id: after
                    ps_type: test.rows
                    depends_on: [slow]
                """,
            ["testing/timeout_retry.yml"] = """
                pipeline_id: "{org_slug}-testing-timeout-retry"
                steps:
                  - step_id: slow
                    ps_type: test.block
                    timeout_seconds: 10
                    retry: { max_attempts: 2, backoff_seconds: 1, max_backoff_seconds: 5 }
                """,
            ["testing/sql_merge.yml"] = """
                # gcp.bq_etl into test_events by merge_partition; {event_date} other than {date} puts the row off the run's day.
                pipeline_id: "{org_slug}-testing-sql-merge"
                parameters: [event_date]
                steps:
                  - step_id: write
                    ps_type: gcp.bq_etl
                    destination: { table: test_events, write_mode: merge_partition, partition_column: event_date }
                    config:
                      query: SELECT {event_date} AS event_date, {run_id} AS id, 1 AS amount, 'sql' AS note
                """,
            ["testing/sql_upsert.yml"] = """
                pipeline_id: "{org_slug}-testing-sql-upsert"
                parameters: [id, amount]
                steps:
                  - step_id: write
                    ps_type: gcp.bq_etl
                    destination: { table: test_events, write_mode: upsert, keys: [id] }
                    config:
                      query: SELECT {date} AS event_date, {id} AS id, CAST({amount} AS INTEGER) AS amount, 'sql' AS note
                """,
            ["testing/sql_partial_columns.yml"] = """
                # The query leaves out the NULLABLE column note.
                pipeline_id: "{org_slug}-testing-sql-partial"
                steps:
                  - step_id: write
                    ps_type: gcp.bq_etl
                    destination: { table: test_events, write_mode: append }
                    config:
                      query: SELECT {date} AS event_date, 'partial' AS id, 1 AS amount
                """,
            ["testing/ordered.yml"] = """
                # Steps listed out of order: the executor must run each after its depends_on.
                pipeline_id: "{org_slug}-testing-ordered"
                steps:
                  - step_id: report
                    ps_type: test.rows
                    depends_on: [transform, load]
                  - step_id: load
                    ps_type: test.rows
                    depends_on: [extract]
                  - step_id: extract
                    ps_type: test.rows
                  - step_id: transform
                    ps_type: test.rows
                    depends_on: [extract]
                """,
            ["testing/block.yml"] = """
                pipeline_id: "{org_slug}-testing-block"
                steps:
                  - step_id: wait
                    ps_type: test.block
                  - step_id: after
                    ps_type: test.rows
                    depends_on: [wait]
                  - step_id: last
                    ps_type: test.rows
                    depends_on: [after]
                """,
        };

        foreach (var mode in WriteModes)
        {
            var destination = mode switch
            {
                "upsert" => "{ table: test_events, write_mode: upsert, keys: [id] }",
                "replace_partitions" => "{ table: test_events, write_mode: replace_partitions, keys: [event_date] }",
                "merge_partition" => "{ table: test_events, write_mode: merge_partition, partition_column: event_date }",
                _ => $"{{ table: test_events, write_mode: {mode} }}",
            };
            foreach (var (suffix, psType) in new[] { ("rows", "test.rows"), ("fail", "test.fail_after_write") })
            {
                files[$"testing/{mode}_{suffix}.yml"] = $$"""
                    pipeline_id: "{org_slug}-testing-{{mode}}-{{suffix}}"
                    steps:
                      - step_id: write
                        ps_type: {{psType}}
                        destination: {{destination}}
                    """;
            }
        }

        return files;
    }
}
