using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Convergence.Core.Kms;
using Convergence.Core.Storage;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Convergence.IntegrationTests.Support;

/// <summary>
/// The API in memory, on its own temporary data folder, with a fake clock, switchable faults in the store, warehouse
/// and KMS, and an in-memory log sink (instead of the JSON console).
/// </summary>
/// <remarks>
/// Settings are passed with <c>UseSetting</c>, which lands in <c>Program</c>'s <c>builder.Configuration</c> before
/// <c>ConvergenceSettings.Load</c> reads it (see <c>FactoryPlumbingTests</c>). Never environment variables: tests run in parallel.
/// </remarks>
public sealed class ConvergenceApiFactory : WebApplicationFactory<Program>
{
    /// <summary>64 random hex characters: long enough for production rules and not a known example value.</summary>
    public const string RootKey = "d03f519d8f6ee56c9d003502f16ffb6448ad4c931abda624b6acf2e8e8e75dfd";

    public const string RootKeyHeader = "X-CA-Root-Key";
    public const string ApiKeyHeader = "X-API-Key";
    public const string AdminEmail = "admin@example.com";

    private readonly Dictionary<string, string?> _settings;
    private readonly bool _ownsDataDirectory;
    private readonly string[] _ownedDatabases = [];
    private int _deleted;

    public ConvergenceApiFactory()
        : this(null)
    {
    }

    /// <param name="settings">Overrides of the default test settings; a <c>null</c> or empty value unsets the key.</param>
    /// <param name="dataDirectory">An existing data folder to reuse (not deleted on dispose); by default a new temporary one.</param>
    public ConvergenceApiFactory(IReadOnlyDictionary<string, string?>? settings, string? dataDirectory = null)
    {
        _ownsDataDirectory = dataDirectory is null;
        DataDirectory = dataDirectory ?? NewTemporaryDirectory();
        Directory.CreateDirectory(DataDirectory);
        // Every setting is pinned (an empty value reads as "not set"), so a variable in the test machine's
        // environment cannot change a test: UseSetting takes precedence over environment variables.
        _settings = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["ENVIRONMENT"] = "development",
            ["CONVERGENCE_DATA_DIR"] = DataDirectory,
            ["CONVERGENCE_CONFIGS_DIR"] = string.Empty,
            ["CONVERGENCE_IMPORT_DIR"] = string.Empty,
            ["CONVERGENCE_STORE"] = string.Empty,
            ["CONVERGENCE_STORE_CONNECTION"] = string.Empty,
            ["CONVERGENCE_WAREHOUSE"] = string.Empty,
            ["CONVERGENCE_KMS"] = string.Empty,
            ["CA_ROOT_API_KEY"] = RootKey,
            ["DISABLE_AUTH"] = "false",
            ["RATE_LIMIT_ENABLED"] = "true",
            ["RATE_LIMIT_REQUESTS_PER_MINUTE"] = string.Empty,
            ["RATE_LIMIT_REQUESTS_PER_HOUR"] = string.Empty,
            ["CORS_ORIGINS"] = string.Empty,
            ["CONVERGENCE_MAX_REQUEST_BODY_BYTES"] = string.Empty,
            ["CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION"] = string.Empty,
        };
        // CONVERGENCE_TEST_BACKEND=postgres runs the suite on the shared-server deployment: every app whose test does not
        // choose its own store and warehouse gets fresh PostgreSQL databases for both (dropped on dispose).
        if (UsesPostgresBackend && settings?.ContainsKey("CONVERGENCE_STORE") != true && settings?.ContainsKey("CONVERGENCE_WAREHOUSE") != true)
        {
            foreach (var (key, value) in PostgresServer.AppSettings("it"))
            {
                _settings[key] = value;
            }

            _ownedDatabases = [_settings["CONVERGENCE_STORE_CONNECTION"]!, _settings["CONVERGENCE_WAREHOUSE_CONNECTION"]!];
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            _settings[key] = value;
        }
    }

    /// <summary>
    /// Settings that keep an app on SQLite (control plane and warehouse) even in a <c>CONVERGENCE_TEST_BACKEND=postgres</c>
    /// run: for tests of the SQLite adapter itself or of the data folder's files, plus <paramref name="more"/>.
    /// </summary>
    public static Dictionary<string, string?> OnSqlite(IReadOnlyDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>(StringComparer.Ordinal) { ["CONVERGENCE_STORE"] = "sqlite", ["CONVERGENCE_WAREHOUSE"] = "sqlite" };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>Whether this test run puts apps on PostgreSQL by default (<c>CONVERGENCE_TEST_BACKEND=postgres</c>).</summary>
    public static bool UsesPostgresBackend => Environment.GetEnvironmentVariable("CONVERGENCE_TEST_BACKEND") == "postgres";

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public string DataDirectory { get; }

    public string DatasetsDirectory => Path.Combine(DataDirectory, "datasets");

    public string CentralDatabasePath => DatasetPath("organizations");

    public FakeTimeProvider Clock { get; } = new();

    /// <summary>A clock with timers the app uses instead of <see cref="Clock"/> when set (retry backoff, step timeouts).</summary>
    public ManualTimeProvider? ManualClock { get; init; }

    /// <summary>
    /// When set, the app reads a copy of the repository's <c>configs/</c> written under the data folder, with these
    /// extra files (path relative to <c>configs/</c> → text) added, instead of the configs next to the binaries.
    /// </summary>
    public IReadOnlyDictionary<string, string>? ConfigFiles { get; init; }

    /// <summary>The configs copy of <see cref="ConfigFiles"/>.</summary>
    public string ConfigsDirectory => Path.Combine(DataDirectory, "configs");

    public FaultPlan Faults { get; } = new();

    public InMemoryLoggerProvider Logs { get; } = new();

    /// <summary>Extra service changes, applied after the factory's own.</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }

    public static string NewTemporaryDirectory() => Path.Combine(Path.GetTempPath(), "convergence-it-" + Guid.NewGuid().ToString("N"));

    public string DatasetPath(string datasetName) => Path.Combine(DatasetsDirectory, datasetName + ".sqlite");

    /// <summary>The file of an org's development dataset, <c>{slug}_local</c>.</summary>
    public string OrgDatasetPath(string slug) => DatasetPath(slug + "_local");

    /// <summary>The control plane read directly, on whichever store this app runs (its SQLite file or its PostgreSQL database).</summary>
    public ControlPlaneDb ControlPlane() =>
        _settings.GetValueOrDefault("CONVERGENCE_STORE") == "postgres"
            ? ControlPlaneDb.Postgres(_settings["CONVERGENCE_STORE_CONNECTION"]!)
            : ControlPlaneDb.Sqlite(CentralDatabasePath);

    /// <summary>An org's development dataset read through the app's own warehouse, whichever adapter it runs on.</summary>
    public WarehouseRows Warehouse(string org) => new(this, org);

    public HttpClient AnonymousClient() => CreateClient();

    public HttpClient RootClient()
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Add(RootKeyHeader, RootKey);
        return client;
    }

    public HttpClient OrgClient(string apiKey)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Add(ApiKeyHeader, apiKey);
        return client;
    }

    public async Task<JsonElement> BootstrapAsync(object? body = null)
    {
        using var client = RootClient();
        using var response = await client.PostAsJsonAsync("/api/v1/admin/bootstrap", body ?? new { }, Json);
        return await ReadSuccessAsync(response, HttpStatusCode.OK);
    }

    public async Task<OnboardResult> OnboardAsync(string slug, string plan = "STARTER")
    {
        using var client = RootClient();
        using var response = await client.PostAsJsonAsync("/api/v1/organizations/onboard", OnboardBody(slug, plan), Json);
        var body = await ReadSuccessAsync(response, HttpStatusCode.Created);
        return new OnboardResult(slug, body.GetProperty("api_key").GetString()!, body.GetProperty("org_api_key_id").GetString()!, body);
    }

    public static object OnboardBody(string slug, string plan = "STARTER") => new
    {
        org_slug = slug,
        company_name = $"{slug} Inc.",
        admin_email = AdminEmail,
        subscription_plan = plan,
    };

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (ConfigFiles is not null)
        {
            TestConfigs.WriteCopy(ConfigsDirectory, ConfigFiles);
            builder.UseSetting("CONVERGENCE_CONFIGS_DIR", ConfigsDirectory);
        }

        builder.ConfigureTestServices(services =>
        {
            services.RemoveAll<TimeProvider>();
            services.AddSingleton<TimeProvider>(ManualClock is null ? Clock : ManualClock);

            Decorate<IControlPlaneStore>(services, (_, inner) => new FaultyControlPlaneStore(inner, Faults));
            Decorate<IWarehouse>(services, (_, inner) => new FaultyWarehouse(inner, Faults));
            Decorate<IKeyManagementService>(services, (_, inner) => new FaultyKeyManagementService(inner, Faults));

            // Program logs JSON to the console; tests capture instead (and keep the test output readable).
            services.RemoveAll<ILoggerProvider>();
            services.AddSingleton<ILoggerProvider>(Logs);

            ConfigureServices?.Invoke(services);
        });
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Interlocked.Exchange(ref _deleted, 1) == 0)
        {
            if (_ownsDataDirectory)
            {
                DeleteDirectory(DataDirectory);
            }

            foreach (var database in _ownedDatabases)
            {
                PostgresServer.DropDatabase(database);
            }
        }
    }

    public static void DeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
            // Best effort: a file still held open (Windows) stays in the temp folder.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Replaces the registration of <typeparamref name="TService"/> with a decorator around what it built.</summary>
    private static void Decorate<TService>(IServiceCollection services, Func<IServiceProvider, TService, TService> decorate)
        where TService : class
    {
        var descriptor = services.LastOrDefault(d => d.ServiceType == typeof(TService) && !d.IsKeyedService)
            ?? throw new InvalidOperationException($"{typeof(TService).Name} is not registered.");
        Func<IServiceProvider, object> build = descriptor switch
        {
            { ImplementationInstance: { } instance } => _ => instance,
            { ImplementationFactory: { } factory } => factory,
            { ImplementationType: { } type } => sp => ActivatorUtilities.CreateInstance(sp, type),
            _ => throw new InvalidOperationException($"Cannot decorate {typeof(TService).Name}."),
        };
        services.Remove(descriptor);
        services.Add(ServiceDescriptor.Describe(typeof(TService), sp => decorate(sp, (TService)build(sp)), descriptor.Lifetime));
    }

    /// <summary>The server-side errors logged so far (exception included), for failure messages.</summary>
    public string ErrorLog() =>
        string.Join(Environment.NewLine, Logs.Records.Where(r => r.Level >= LogLevel.Error).Select(r => $"[{r.Category}] {r.Message}{Environment.NewLine}{r.Exception}"));

    private async Task<JsonElement> ReadSuccessAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != expected)
        {
            throw new InvalidOperationException(
                $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} answered {(int)response.StatusCode}, expected {(int)expected}: {text}{Environment.NewLine}Server errors:{Environment.NewLine}{ErrorLog()}");
        }

        return JsonDocument.Parse(text).RootElement.Clone();
    }
}

/// <summary>What onboarding returned: the one-time key, its id and the whole body.</summary>
public sealed record OnboardResult(string Slug, string ApiKey, string KeyId, JsonElement Body);
