using System.Globalization;
using Convergence.Core.Organizations;
using Convergence.Kms.Google;
using Microsoft.Extensions.Configuration;

namespace Convergence.Api.Configuration;

/// <summary>
/// Convergence's settings, read from environment variables (or appsettings) under the names of SPEC §2 and
/// validated once at startup: an invalid or unsafe value stops the service with a message naming the setting.
/// </summary>
public sealed record ConvergenceSettings
{
    /// <summary>
    /// Names the environment and adapters only: the generated record text would print the root key and the database
    /// connection strings, and settings objects end up in logs and debugger views.
    /// </summary>
    public override string ToString() => $"ConvergenceSettings {{ Environment = {Environment.Name}, Store = {Store}, Warehouse = {Warehouse}, Kms = {Kms} }}";

    public const int MinRootKeyLength = 32;

    /// <summary>Root keys that appear in docs and examples; production refuses them.</summary>
    public static readonly IReadOnlyList<string> KnownDefaultRootKeys =
    [
        "changeme", "change-me", "root", "admin", "password", "secret", "test", "development", "dev-root-key",
        "your-root-key", "your-secure-root-key", "ca_root_api_key", "test-root-key-for-development-only-32chars",
    ];

    public required DeploymentEnvironment Environment { get; init; }

    public required string DataDirectory { get; init; }

    public required string ConfigsDirectory { get; init; }

    /// <summary>
    /// The only folder file imports (such as GCP billing exports named by <c>source_uri</c>) are read from
    /// (<c>CONVERGENCE_IMPORT_DIR</c>, default <c>{CONVERGENCE_DATA_DIR}/imports</c>).
    /// </summary>
    public required string ImportDirectory { get; init; }

    /// <summary><c>sqlite</c> (default, embedded) or <c>postgres</c> (<c>CONVERGENCE_STORE</c>): where the control plane lives.</summary>
    public required string Store { get; init; }

    /// <summary>
    /// With <c>CONVERGENCE_STORE=postgres</c>: the Npgsql connection string of the control-plane database
    /// (<c>CONVERGENCE_STORE_CONNECTION</c>). It may hold a password: never log or echo it.
    /// </summary>
    public string? StoreConnection { get; init; }

    public required string Warehouse { get; init; }

    /// <summary>
    /// With <c>CONVERGENCE_WAREHOUSE=postgres</c>: the Npgsql connection string of the warehouse database
    /// (<c>CONVERGENCE_WAREHOUSE_CONNECTION</c>), one schema per dataset. It may hold a password: never log or echo it.
    /// </summary>
    public string? WarehouseConnection { get; init; }

    public required string Kms { get; init; }

    /// <summary>The root key; <c>null</c> until resolved (development may generate one).</summary>
    public string? RootApiKey { get; init; }

    public bool DisableAuth { get; init; }

    public bool RateLimitEnabled { get; init; } = true;

    public int RateLimitPerMinute { get; init; } = 600;

    public int RateLimitPerHour { get; init; } = 20_000;

    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    public bool AllowLocalKmsInProduction { get; init; }

    /// <summary>With <c>CONVERGENCE_KMS=gcp</c>: the CryptoKey resource name (<c>KMS_KEY_NAME</c>).</summary>
    public string? KmsKeyName { get; init; }

    /// <summary>With <c>CONVERGENCE_KMS=gcp</c>: the Cloud KMS endpoint (<c>KMS_BASE_URL</c>).</summary>
    public Uri KmsBaseUrl { get; init; } = GoogleCloudKmsOptions.DefaultBaseUrl;

    /// <summary>With <c>CONVERGENCE_KMS=gcp</c>: the service-account key file (<c>GOOGLE_APPLICATION_CREDENTIALS</c>).</summary>
    public string? KmsCredentialsFile { get; init; }

    /// <summary>With <c>CONVERGENCE_KMS=gcp</c>: the OAuth token endpoint (<c>KMS_TOKEN_URL</c>).</summary>
    public Uri KmsTokenUrl { get; init; } = GoogleCloudKmsOptions.DefaultTokenUrl;

    /// <summary>With <c>CONVERGENCE_KMS=gcp</c>: the limit on each KMS or token call (<c>KMS_TIMEOUT_SECONDS</c>).</summary>
    public TimeSpan KmsTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public long MaxRequestBodyBytes { get; init; } = 1024 * 1024;

    public TimeSpan ApiKeyCacheTtl { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Provider API base URLs, as the providers' SDKs name them.</summary>
    public Uri OpenAiBaseUrl { get; init; } = new("https://api.openai.com/v1");

    public Uri AnthropicBaseUrl { get; init; } = new("https://api.anthropic.com");

    public Uri DeepSeekBaseUrl { get; init; } = new("https://api.deepseek.com");

    /// <summary>
    /// Where tenants' GCP service-account keys are exchanged for tokens when integrations are checked
    /// (<c>GCP_TOKEN_URL</c>, default Google's). Keys naming any other <c>token_uri</c> are refused.
    /// </summary>
    public Uri GcpTokenUrl { get; init; } = new("https://oauth2.googleapis.com/token");

    /// <summary>
    /// The BigQuery REST API that <c>gcp.bq_etl</c> with <c>source: bigquery</c> queries in tenants' own projects with their
    /// service accounts (<c>BIGQUERY_BASE_URL</c>, default <c>https://bigquery.googleapis.com/bigquery/v2</c>).
    /// </summary>
    public Uri BigQueryBaseUrl { get; init; } = new("https://bigquery.googleapis.com/bigquery/v2");

    /// <summary>
    /// The location those queries run in (<c>BIGQUERY_LOCATION</c>, such as <c>US</c>, <c>EU</c> or <c>europe-west1</c>);
    /// unset lets BigQuery infer it from the tables the query reads.
    /// </summary>
    public string? BigQueryLocation { get; init; }

    /// <summary>The limit on each live credential check (<c>INTEGRATION_CHECK_TIMEOUT_SECONDS</c>).</summary>
    public TimeSpan IntegrationCheckTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Runs executed at once by this instance's worker pool.</summary>
    public int PipelineWorkers { get; init; } = 4;

    /// <summary>How often a queue entry may be claimed before a lost lease fails it for good (<c>CONVERGENCE_RUN_MAX_ATTEMPTS</c>).</summary>
    public int RunMaxAttempts { get; init; } = 3;

    /// <summary>How often an idle worker pool looks for runs queued by other instances (<c>CONVERGENCE_QUEUE_POLL_SECONDS</c>).</summary>
    public TimeSpan QueuePollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// <c>embedded</c> (default): this process triggers due schedules itself every <see cref="SchedulerInterval"/>;
    /// <c>external</c>: an external cron calls the scheduler endpoints (<c>CONVERGENCE_SCHEDULER</c>).
    /// </summary>
    public string Scheduler { get; init; } = "embedded";

    /// <summary>How often the embedded scheduler triggers due schedules (<c>CONVERGENCE_SCHEDULER_INTERVAL_SECONDS</c>).</summary>
    public TimeSpan SchedulerInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Days of quota rows, finished queue entries and schedule ticks kept (<c>QUOTA_RETENTION_DAYS</c>).</summary>
    public int QuotaRetentionDays { get; init; } = 90;

    /// <summary>How often a worker proves it is alive; four missed beats and its runs are failed as abandoned.</summary>
    public TimeSpan RunHeartbeatInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long GET /organizations/{org} may serve a cached profile (0 = always read the store).</summary>
    public TimeSpan OrganizationCacheTtl { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Reads and validates settings; every problem is collected and reported together.</summary>
    public static ConvergenceSettings Load(IConfiguration configuration)
    {
        var errors = new List<string>();
        string? Get(string name) => configuration[name] is { Length: > 0 } v ? v.Trim() : null;

        bool GetBool(string name, bool fallback)
        {
            var text = Get(name);
            if (text is null)
            {
                return fallback;
            }

            if (bool.TryParse(text, out var value))
            {
                return value;
            }

            errors.Add($"{name}='{text}' is not a boolean; use true or false.");
            return fallback;
        }

        int GetInt(string name, int fallback, int min)
        {
            var text = Get(name);
            if (text is null)
            {
                return fallback;
            }

            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min)
            {
                return value;
            }

            errors.Add($"{name}='{text}' must be an integer of at least {min}.");
            return fallback;
        }

        string GetChoice(string name, string fallback, params string[] supported)
        {
            var text = (Get(name) ?? fallback).ToLowerInvariant();
            if (!supported.Contains(text))
            {
                errors.Add($"{name}='{text}' is not supported by this build; supported: {string.Join(", ", supported)}.");
                return fallback;
            }

            return text;
        }

        var environmentName = Get("ENVIRONMENT") ?? DeploymentEnvironment.Development.Name;
        if (!DeploymentEnvironment.TryParse(environmentName, out var environment))
        {
            errors.Add($"ENVIRONMENT='{environmentName}' is not one of development, staging, production.");
            environment = DeploymentEnvironment.Production; // Fail safe: validate the rest as strictly as production.
        }

        var dataDirectory = Path.GetFullPath(Get("CONVERGENCE_DATA_DIR") ?? "data");
        var settings = new ConvergenceSettings
        {
            Environment = environment,
            DataDirectory = dataDirectory,
            ImportDirectory = Path.GetFullPath(Get("CONVERGENCE_IMPORT_DIR") ?? Path.Combine(dataDirectory, "imports")),
            ConfigsDirectory = Path.GetFullPath(Get("CONVERGENCE_CONFIGS_DIR") ?? Path.Combine(AppContext.BaseDirectory, "configs")),
            // Adapters not in this build are an error when named, not a silent fallback.
            Store = GetChoice("CONVERGENCE_STORE", "sqlite", "sqlite", "postgres"),
            Warehouse = GetChoice("CONVERGENCE_WAREHOUSE", "sqlite", "sqlite", "postgres"),
            Kms = GetChoice("CONVERGENCE_KMS", "local", "local", "gcp"),
            RootApiKey = Get("CA_ROOT_API_KEY"),
            DisableAuth = GetBool("DISABLE_AUTH", false),
            RateLimitEnabled = GetBool("RATE_LIMIT_ENABLED", true),
            RateLimitPerMinute = GetInt("RATE_LIMIT_REQUESTS_PER_MINUTE", 600, 1),
            RateLimitPerHour = GetInt("RATE_LIMIT_REQUESTS_PER_HOUR", 20_000, 1),
            CorsOrigins = (Get("CORS_ORIGINS") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            AllowLocalKmsInProduction = GetBool("CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION", false),
            MaxRequestBodyBytes = GetInt("CONVERGENCE_MAX_REQUEST_BODY_BYTES", 1024 * 1024, 1024),
            OpenAiBaseUrl = GetUrl(Get, "OPENAI_BASE_URL", new Uri("https://api.openai.com/v1"), errors),
            AnthropicBaseUrl = GetUrl(Get, "ANTHROPIC_BASE_URL", new Uri("https://api.anthropic.com"), errors),
            DeepSeekBaseUrl = GetUrl(Get, "DEEPSEEK_BASE_URL", new Uri("https://api.deepseek.com"), errors),
            GcpTokenUrl = GetUrl(Get, "GCP_TOKEN_URL", new Uri("https://oauth2.googleapis.com/token"), errors),
            IntegrationCheckTimeout = TimeSpan.FromSeconds(GetInt("INTEGRATION_CHECK_TIMEOUT_SECONDS", 10, 1)),
            BigQueryBaseUrl = GetUrl(Get, "BIGQUERY_BASE_URL", new Uri("https://bigquery.googleapis.com/bigquery/v2"), errors),
            BigQueryLocation = BigQueryLocationSetting(Get("BIGQUERY_LOCATION"), errors),
            PipelineWorkers = GetInt("CONVERGENCE_PIPELINE_WORKERS", 4, 1),
            RunMaxAttempts = GetInt("CONVERGENCE_RUN_MAX_ATTEMPTS", 3, 1),
            QueuePollInterval = TimeSpan.FromSeconds(GetInt("CONVERGENCE_QUEUE_POLL_SECONDS", 2, 1)),
            Scheduler = GetChoice("CONVERGENCE_SCHEDULER", "embedded", "embedded", "external"),
            SchedulerInterval = TimeSpan.FromSeconds(GetInt("CONVERGENCE_SCHEDULER_INTERVAL_SECONDS", 30, 1)),
            QuotaRetentionDays = GetInt("QUOTA_RETENTION_DAYS", 90, 35),
            RunHeartbeatInterval = TimeSpan.FromSeconds(GetInt("CONVERGENCE_RUN_HEARTBEAT_SECONDS", 15, 1)),
            OrganizationCacheTtl = TimeSpan.FromSeconds(GetInt("CONVERGENCE_ORG_CACHE_SECONDS", 2, 0)),
        };

        if (settings.Store == "postgres")
        {
            settings = settings with { StoreConnection = PostgresConnection(Get, "CONVERGENCE_STORE_CONNECTION", "CONVERGENCE_STORE=postgres", errors) };
        }

        if (settings.Warehouse == "postgres")
        {
            settings = settings with { WarehouseConnection = PostgresConnection(Get, "CONVERGENCE_WAREHOUSE_CONNECTION", "CONVERGENCE_WAREHOUSE=postgres", errors) };
        }

        if (settings.Kms == "gcp")
        {
            settings = settings with
            {
                KmsKeyName = GcpKeyName(Get, errors),
                KmsBaseUrl = GetUrl(Get, "KMS_BASE_URL", GoogleCloudKmsOptions.DefaultBaseUrl, errors),
                KmsTokenUrl = GetUrl(Get, "KMS_TOKEN_URL", GoogleCloudKmsOptions.DefaultTokenUrl, errors),
                KmsCredentialsFile = GcpCredentialsFile(Get("GOOGLE_APPLICATION_CREDENTIALS"), errors),
                KmsTimeout = TimeSpan.FromSeconds(GetInt("KMS_TIMEOUT_SECONDS", 10, 1)),
            };
        }

        foreach (var origin in settings.CorsOrigins)
        {
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath == "/"))
            {
                errors.Add($"CORS_ORIGINS entry '{origin}' must be an origin such as https://app.example.com.");
            }
        }

        if (environment.IsProduction)
        {
            errors.AddRange(ProductionProblems(settings));
        }

        if (errors.Count > 0)
        {
            throw new InvalidSettingsException(errors);
        }

        return settings;
    }

    /// <summary>A BigQuery location name (<c>US</c>, <c>EU</c>, <c>europe-west1</c>), or null when unset.</summary>
    private static string? BigQueryLocationSetting(string? text, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!Processors.Gcp.BigQuery.BigQueryOptions.IsLocation(text))
        {
            errors.Add($"BIGQUERY_LOCATION='{(text.Length > 40 ? text[..40] + "…" : text)}' is not a BigQuery location such as US, EU or europe-west1.");
            return null;
        }

        return text;
    }

    /// <summary>
    /// A required Npgsql connection string naming a host. Errors name the setting but never quote its value, which may
    /// hold a password.
    /// </summary>
    private static string? PostgresConnection(Func<string, string?> get, string name, string neededBy, List<string> errors)
    {
        var text = get(name);
        if (text is null)
        {
            errors.Add($"{neededBy} needs {name}: an Npgsql connection string such as Host=db.internal;Database=convergence;Username=convergence.");
            return null;
        }

        try
        {
            var builder = new Npgsql.NpgsqlConnectionStringBuilder(text);
            if (string.IsNullOrWhiteSpace(builder.Host))
            {
                errors.Add($"{name} names no Host; give the PostgreSQL server as Host=...");
                return null;
            }
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            // The parser's message can quote the offending part, so it is not passed on.
            errors.Add($"{name} is not a valid Npgsql connection string (Key=Value pairs separated by ';', such as Host=...;Database=...;Username=...).");
            return null;
        }

        return text;
    }

    /// <summary>KMS_KEY_NAME, or the name built from KMS_PROJECT_ID, KMS_LOCATION, KMS_KEYRING and KMS_KEY.</summary>
    private static string? GcpKeyName(Func<string, string?> get, List<string> errors)
    {
        var name = get("KMS_KEY_NAME");
        if (name is null)
        {
            string[] parts = ["KMS_PROJECT_ID", "KMS_LOCATION", "KMS_KEYRING", "KMS_KEY"];
            var missing = parts.Where(p => get(p) is null).ToList();
            if (missing.Count > 0)
            {
                errors.Add($"CONVERGENCE_KMS=gcp needs KMS_KEY_NAME (projects/*/locations/*/keyRings/*/cryptoKeys/*), or all of KMS_PROJECT_ID, KMS_LOCATION, KMS_KEYRING, KMS_KEY (missing: {string.Join(", ", missing)}).");
                return null;
            }

            name = $"projects/{get("KMS_PROJECT_ID")}/locations/{get("KMS_LOCATION")}/keyRings/{get("KMS_KEYRING")}/cryptoKeys/{get("KMS_KEY")}";
        }

        if (!GoogleCloudKmsOptions.IsValidKeyName(name))
        {
            errors.Add($"KMS_KEY_NAME='{name}' is not a CryptoKey name of the form projects/*/locations/*/keyRings/*/cryptoKeys/*.");
            return null;
        }

        return name;
    }

    private static Uri GetUrl(Func<string, string?> get, string name, Uri fallback, List<string> errors)
    {
        var text = get(name);
        if (text is null)
        {
            return fallback;
        }

        if (Uri.TryCreate(text, UriKind.Absolute, out var url) && GoogleCloudKmsOptions.IsHttpUrl(url))
        {
            return url;
        }

        errors.Add($"{name}='{text}' must be an absolute http or https URL.");
        return fallback;
    }

    /// <summary>Checks the service-account key file now, so a bad one stops startup rather than the first encrypt.</summary>
    private static string? GcpCredentialsFile(string? path, List<string> errors)
    {
        if (path is null)
        {
            errors.Add("CONVERGENCE_KMS=gcp needs GOOGLE_APPLICATION_CREDENTIALS: the path of a service-account key file.");
            return null;
        }

        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            errors.Add($"GOOGLE_APPLICATION_CREDENTIALS='{path}' cannot be read: {ex.GetType().Name}.");
            return null;
        }

        try
        {
            ServiceAccountKey.Parse(json);
        }
        catch (FormatException ex)
        {
            errors.Add($"GOOGLE_APPLICATION_CREDENTIALS='{path}': {ex.Message}");
            return null;
        }

        return Path.GetFullPath(path);
    }

    /// <summary>Every reason production must refuse these settings.</summary>
    public static IEnumerable<string> ProductionProblems(ConvergenceSettings s)
    {
        if (s.RootApiKey is null)
        {
            yield return "CA_ROOT_API_KEY is required in production.";
        }
        else if (s.RootApiKey.Length < MinRootKeyLength)
        {
            yield return $"CA_ROOT_API_KEY must be at least {MinRootKeyLength} characters in production.";
        }
        else if (KnownDefaultRootKeys.Contains(s.RootApiKey, StringComparer.OrdinalIgnoreCase))
        {
            yield return "CA_ROOT_API_KEY is a known example value; generate a random one (openssl rand -hex 32).";
        }

        if (s.DisableAuth)
        {
            yield return "DISABLE_AUTH=true is not allowed in production.";
        }

        if (!s.RateLimitEnabled)
        {
            yield return "RATE_LIMIT_ENABLED=false is not allowed in production.";
        }

        if (s.CorsOrigins.Contains("*"))
        {
            yield return "CORS_ORIGINS='*' is not allowed in production; list the frontend origins.";
        }

        foreach (var (name, url) in new[]
        {
            ("OPENAI_BASE_URL", s.OpenAiBaseUrl), ("ANTHROPIC_BASE_URL", s.AnthropicBaseUrl), ("DEEPSEEK_BASE_URL", s.DeepSeekBaseUrl), ("GCP_TOKEN_URL", s.GcpTokenUrl),
            ("BIGQUERY_BASE_URL", s.BigQueryBaseUrl),
        })
        {
            if (url.Scheme != Uri.UriSchemeHttps)
            {
                yield return $"{name} must be an https URL in production (credentials are sent to it).";
            }
        }

        if (s.Kms == "local" && !s.AllowLocalKmsInProduction)
        {
            yield return "CONVERGENCE_KMS=local (the development key ring) needs CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION=true in production.";
        }
    }
}

/// <summary>The settings are invalid or unsafe; <see cref="Exception.Message"/> names every offending setting.</summary>
public sealed class InvalidSettingsException(IReadOnlyList<string> problems)
    : Exception("Convergence cannot start:" + string.Concat(problems.Select(p => System.Environment.NewLine + "  - " + p)))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
