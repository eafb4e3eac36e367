using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.RateLimiting;
using Convergence.Api.Apis;
using Convergence.Api.Auth;
using Convergence.Api.Configuration;
using Convergence.Api.Health;
using Convergence.Api.Http;
using Convergence.Core.Configuration;
using Convergence.Core.Keys;
using Convergence.Core.Kms;
using Convergence.Kms.Google;
using Convergence.Core.Organizations;
using Convergence.Core.Pipelines;
using Convergence.Core.Storage;
using Convergence.Api.Pipelines;
using Convergence.Processors;
using Convergence.Storage.Postgres;
using Convergence.Storage.Sqlite;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.RateLimiting;

namespace Convergence.Api.Extensions;

/// <summary>One registration method per concern; Program.cs reads as their table of contents.</summary>
public static partial class ConvergenceServiceExtensions
{
    /// <summary>Reads and validates settings (throws <see cref="InvalidSettingsException"/>) and registers them.</summary>
    public static ConvergenceSettings AddConvergenceSettings(this WebApplicationBuilder builder)
    {
        var settings = ConvergenceSettings.Load(builder.Configuration);
        var (rootKey, generatedFile) = RootKeyProvisioning.Resolve(settings);
        builder.Services.AddSingleton(new RootKey(rootKey));
        builder.Services.AddSingleton(new RootKeySource(generatedFile));
        return settings;
    }

    /// <summary>
    /// JSON console logs. Default levels are set in code, beneath every other configuration source, so they hold
    /// whatever the working directory (appsettings.json is found only under the content root) and stay overridable.
    /// Scopes are off: they cost a fifth of the throughput of a small request, and the lines that matter carry
    /// their request or run id themselves.
    /// </summary>
    public static WebApplicationBuilder AddConvergenceLogging(this WebApplicationBuilder builder)
    {
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Information",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
                ["Logging:LogLevel:Microsoft.AspNetCore.DataProtection"] = "Warning",
                ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
            },
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = false;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
        });
        return builder;
    }

    /// <summary>Storage adapters, KMS, processors and the executor.</summary>
    public static IServiceCollection AddConvergenceCore(this IServiceCollection services, ConvergenceSettings settings)
    {
        services.AddSingleton(settings);
        services.AddSingleton(settings.Environment);
        services.AddSingleton(TimeProvider.System);
        Directory.CreateDirectory(settings.DataDirectory);
        if (settings.Warehouse == "postgres")
        {
            services.AddPostgresStorage(null, settings.WarehouseConnection);
        }

        services.AddSqliteStorage(settings.DataDirectory, controlPlane: settings.Store == "sqlite", warehouse: settings.Warehouse == "sqlite");
        if (settings.Store == "postgres")
        {
            services.AddPostgresStorage(settings.StoreConnection, null);
        }

        if (settings.Kms == "gcp")
        {
            services.AddSingleton<IKeyManagementService>(sp => new GoogleCloudKms(
                new GoogleCloudKmsOptions(
                    settings.KmsKeyName!, settings.KmsBaseUrl, File.ReadAllText(settings.KmsCredentialsFile!), settings.KmsTokenUrl, settings.KmsTimeout),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<GoogleCloudKms>>()));
        }
        else
        {
            // One key ring serves both contracts: decryption keeps working while the rotation re-wraps stored rows.
            services.AddSingleton(sp => LocalKeyRing.OpenOrCreate(Path.Combine(settings.DataDirectory, "keyring.json"), sp.GetRequiredService<TimeProvider>()));
            services.AddSingleton<IKeyManagementService>(sp => sp.GetRequiredService<LocalKeyRing>());
            services.AddSingleton<IKeyEncryptionKeyRotation>(sp => sp.GetRequiredService<LocalKeyRing>());
        }

        services.AddSingleton<KeyRotationService>();
        var configs = new ConfigsFolder(settings.ConfigsDirectory);
        services.AddSingleton(configs);
        services.AddSingleton(new TableSchemaCatalog(configs.Root));
        services.AddSingleton<ProcessorRegistry>();
        services.AddSingleton(sp => new PipelineCatalog(
            configs,
            new PipelineLoadContext(
                sp.GetRequiredService<ProcessorRegistry>().PsTypes.ToHashSet(StringComparer.Ordinal),
                sp.GetRequiredService<TableSchemaCatalog>().Tables)));
        services.AddSingleton(WorkerIdentity.Create());
        services.AddSingleton<RunCancellationRegistry>();
        services.AddSingleton<PipelineExecutor>();
        services.AddSingleton(new ConvergenceWorkerOptions(settings.PipelineWorkers, settings.RunHeartbeatInterval, settings.RunMaxAttempts, settings.QueuePollInterval));
        services.AddSingleton<RunQueueSignal>();
        services.AddSingleton<HeldLeases>();
        services.AddSingleton<RunDispatcher>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<Core.Scheduling.ScheduleTrigger>(sp, settings.RunMaxAttempts));
        services.AddSingleton<PipelineRunService>();
        services.AddSingleton<Pricing.PriceTableService>();
        services.AddSingleton<Core.Pricing.IOrgPriceLists>(sp => sp.GetRequiredService<Pricing.PriceTableService>());
        services.AddSingleton<Pricing.SubscriptionTableService>();
        services.AddHostedService<PipelineWorkerService>();
        services.AddHostedService<RunMaintenanceService>();
        services.AddHostedService<RunQueueListenerService>();
        if (settings.Scheduler == "embedded")
        {
            services.AddHostedService<EmbeddedSchedulerService>();
        }
        services.AddSingleton<ApiKeyIssuer>();
        services.AddSingleton<Core.Integrations.CredentialVault>();
        services.AddSingleton(new Processors.Integrations.ProviderEndpoints(
            settings.OpenAiBaseUrl, settings.AnthropicBaseUrl, settings.DeepSeekBaseUrl, settings.IntegrationCheckTimeout));
        // Tenants' API keys travel in Authorization and x-api-key. HttpClient's logging redacts header values in its
        // messages, but the canary test saw them in its Trace-level structured state: the credential checker's client has
        // no HttpClient loggers at all (its outcome is recorded on the run's step).
        services.ConfigureHttpClientDefaults(http => http.RedactLoggedHeaders(_ => true));
        services.AddHttpClient<Processors.Integrations.ProviderCredentialChecker>().RemoveAllLoggers();
        services.AddHttpClient(Processors.DeepSeek.DeepSeekBalanceProcessor.HttpClientName).RemoveAllLoggers();
        // The usage and cost fetchers send the same admin keys: no HttpClient loggers either. Their retries log themselves.
        services.AddSingleton(Processors.ProviderApis.ProviderApiOptions.Default);
        services.AddHttpClient<Processors.ProviderApis.ProviderApiClient>().RemoveAllLoggers();
        services.AddSingleton(new Processors.Integrations.GcpTokenEndpoint(settings.GcpTokenUrl, settings.IntegrationCheckTimeout));
        services.AddSingleton<Processors.Integrations.GcpServiceAccountChecker>();
        // gcp.bq_etl source: bigquery sends tenants' access tokens: no HttpClient loggers either; its retries log themselves.
        services.AddSingleton(new Processors.Gcp.BigQuery.BigQueryOptions(settings.BigQueryBaseUrl, settings.BigQueryLocation, settings.IntegrationCheckTimeout));
        services.AddHttpClient<Processors.Gcp.BigQuery.BigQueryClient>().RemoveAllLoggers();
        services.AddSingleton<Core.Integrations.IOrgSeedTable>(sp => new Pricing.PriceSeedTable(sp.GetRequiredService<Pricing.PriceTableService>(), "openai"));
        services.AddSingleton<Core.Integrations.IOrgSeedTable>(sp => new Pricing.PriceSeedTable(sp.GetRequiredService<Pricing.PriceTableService>(), "anthropic"));
        services.AddSingleton<Core.Integrations.IOrgSeedTable>(sp => new Pricing.PriceSeedTable(sp.GetRequiredService<Pricing.PriceTableService>(), "deepseek"));
        services.AddSingleton<Core.Integrations.IOrgSeedTable, Pricing.SubscriptionSeedTable>();
        services.AddSingleton<OrganizationAdministration>();
        services.AddSingleton(new Processors.Imports.ImportDirectory(settings.ImportDirectory));
        services.AddConvergenceProcessors();
        return services;
    }

    public static IServiceCollection AddConvergenceAuth(this IServiceCollection services, ConvergenceSettings settings)
    {
        services.AddSingleton<OrgCacheGenerations>();
        services.AddSingleton(sp => new ApiKeyAuthenticator(
            sp.GetRequiredService<IControlPlaneStore>(), sp.GetRequiredService<TimeProvider>(), settings.ApiKeyCacheTtl, sp.GetRequiredService<OrgCacheGenerations>()));
        services.AddSingleton(sp => new OrganizationOverviewCache(
            sp.GetRequiredService<OrganizationAdministration>(), sp.GetRequiredService<OrgCacheGenerations>(), sp.GetRequiredService<TimeProvider>(), settings.OrganizationCacheTtl));
        services.AddAuthentication(ConvergenceAuth.Scheme)
            .AddScheme<AuthenticationSchemeOptions, ConvergenceAuthenticationHandler>(ConvergenceAuth.Scheme, null);
        services.AddSingleton<IAuthorizationHandler, OrgAccessHandler>();
        services.AddAuthorizationBuilder()
            .AddPolicy(ConvergenceAuth.RootPolicy, p => p.RequireAuthenticatedUser().RequireRole(ConvergenceAuth.RootRole))
            .AddPolicy(ConvergenceAuth.OrgPolicy, p => p.RequireAuthenticatedUser().AddRequirements(new OrgAccessRequirement()))
            .AddPolicy(ConvergenceAuth.AnyKeyPolicy, p => p.RequireAuthenticatedUser());
        return services;
    }

    /// <summary>JSON, problem details, CORS, rate limiting, health checks and OpenAPI.</summary>
    public static IServiceCollection AddConvergenceHttp(this IServiceCollection services, ConvergenceSettings settings)
    {
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.DictionaryKeyPolicy = null;
            o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, ApiJsonContext.Default);
        });
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddProblemDetails(o => o.CustomizeProblemDetails = c =>
        {
            c.ProblemDetails.Instance ??= c.HttpContext.Request.Path;
            c.ProblemDetails.Detail ??= c.ProblemDetails.Status switch
            {
                StatusCodes.Status404NotFound => $"No route matches {c.HttpContext.Request.Method} {c.HttpContext.Request.Path}.",
                StatusCodes.Status405MethodNotAllowed => $"{c.HttpContext.Request.Method} is not allowed on {c.HttpContext.Request.Path}.",
                StatusCodes.Status415UnsupportedMediaType => "Send the body as JSON with Content-Type: application/json.",
                _ => null,
            };
            c.ProblemDetails.Extensions["request_id"] = c.HttpContext.TraceIdentifier;
        });
        services.AddExceptionHandler<ConvergenceExceptionHandler>();
        services.AddCors(o => o.AddDefaultPolicy(p =>
        {
            if (settings.CorsOrigins.Contains("*"))
            {
                p.AllowAnyOrigin();
            }
            else
            {
                p.WithOrigins([.. settings.CorsOrigins]);
            }

            p.AllowAnyHeader().AllowAnyMethod().WithExposedHeaders(RequestContextMiddleware.RequestIdHeader, "Retry-After", "Location");
        }));
        services.AddConvergenceRateLimiting(settings);
        services.AddHealthChecks()
            .AddCheck<StoreHealthCheck>("store", tags: [HealthApi.ReadyTag])
            .AddCheck<WarehouseHealthCheck>("warehouse", tags: [HealthApi.ReadyTag])
            .AddCheck<KmsHealthCheck>("kms", tags: [HealthApi.ReadyTag]);
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Convergence API";
            document.Info.Description = "Multi-tenant FinOps pipelines. Root routes take X-CA-Root-Key; org routes take X-API-Key and {org_slug} must be the key's org.";
            document.Components ??= new Microsoft.OpenApi.OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, Microsoft.OpenApi.IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["RootKey"] = new Microsoft.OpenApi.OpenApiSecurityScheme
            {
                Type = Microsoft.OpenApi.SecuritySchemeType.ApiKey,
                In = Microsoft.OpenApi.ParameterLocation.Header,
                Name = ConvergenceAuth.RootKeyHeader,
                Description = "Platform root key (CA_ROOT_API_KEY): bootstrap, onboarding, org administration.",
            };
            document.Components.SecuritySchemes["OrgApiKey"] = new Microsoft.OpenApi.OpenApiSecurityScheme
            {
                Type = Microsoft.OpenApi.SecuritySchemeType.ApiKey,
                In = Microsoft.OpenApi.ParameterLocation.Header,
                Name = ConvergenceAuth.ApiKeyHeader,
                Description = "Org API key ({org_slug}_api_...): routes under that org only.",
            };
            return Task.CompletedTask;
        }).AddOperationTransformer((operation, context, _) =>
        {
            // Say on each operation which key it takes, so the docs' "Authorize" sends the right header.
            var policies = context.Description.ActionDescriptor.EndpointMetadata.OfType<IAuthorizeData>().Select(a => a.Policy).ToHashSet();
            string[] schemes = policies.Contains(ConvergenceAuth.RootPolicy) ? ["RootKey"]
                : policies.Count > 0 ? ["OrgApiKey", "RootKey"]
                : [];
            if (schemes.Length > 0)
            {
                operation.Security = [.. schemes.Select(scheme => new Microsoft.OpenApi.OpenApiSecurityRequirement
                {
                    [new Microsoft.OpenApi.OpenApiSecuritySchemeReference(scheme, context.Document)] = [],
                })];
            }

            return Task.CompletedTask;
        }));
        return services;
    }

    /// <summary>
    /// Requests per minute and per hour, partitioned by the authenticated org (root and anonymous traffic each share
    /// one partition), so a flood of random keys cannot create partitions. Rejections are 429 with Retry-After.
    /// </summary>
    private static IServiceCollection AddConvergenceRateLimiting(this IServiceCollection services, ConvergenceSettings settings) =>
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            if (!settings.RateLimitEnabled)
            {
                return;
            }

            static string PartitionOf(HttpContext c) =>
                c.User.IsRoot() ? "root" : c.User.OrgOf() is { } org ? "org:" + org : "anonymous";

            o.GlobalLimiter = PartitionedRateLimiter.CreateChained(
                PartitionedRateLimiter.Create<HttpContext, string>(c => RateLimitPartition.GetFixedWindowLimiter(PartitionOf(c), _ =>
                    new FixedWindowRateLimiterOptions { PermitLimit = settings.RateLimitPerMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 })),
                PartitionedRateLimiter.Create<HttpContext, string>(c => RateLimitPartition.GetFixedWindowLimiter(PartitionOf(c), _ =>
                    new FixedWindowRateLimiterOptions { PermitLimit = settings.RateLimitPerHour, Window = TimeSpan.FromHours(1), QueueLimit = 0 })));
            o.OnRejected = async (context, cancellationToken) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? (int)Math.Ceiling(wait.TotalSeconds) : 60;
                context.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await Problems.WriteAsync(
                    context.HttpContext,
                    StatusCodes.Status429TooManyRequests,
                    "Rate limit exceeded",
                    $"Too many requests for this key; limits are {settings.RateLimitPerMinute}/minute and {settings.RateLimitPerHour}/hour. Retry after {retryAfter} s.");
            };
        });

    /// <summary>The HTTP pipeline, in order.</summary>
    public static WebApplication UseConvergenceHttp(this WebApplication app)
    {
        app.UseMiddleware<RequestContextMiddleware>();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseCors();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();
        app.MapOpenApi("/openapi/{documentName}.json");
        app.UseSwaggerUI(o =>
        {
            o.RoutePrefix = "docs";
            o.SwaggerEndpoint("/openapi/v1.json", "Convergence API v1");
            o.DocumentTitle = "Convergence API";
        });
        return app;
    }

    /// <summary>Says where the development root key is, never what it is.</summary>
    public static void AnnounceRootKey(this WebApplication app)
    {
        var source = app.Services.GetRequiredService<RootKeySource>();
        if (source.GeneratedFile is { } file)
        {
            LogGeneratedRootKey(app.Logger, file);
        }
    }

    [LoggerMessage(EventId = 1100, Level = LogLevel.Warning, Message = "CA_ROOT_API_KEY is not set: using the development root key in {RootKeyFile} (mode 0600). Use it with: -H \"X-CA-Root-Key: $(cat {RootKeyFile})\"")]
    private static partial void LogGeneratedRootKey(ILogger logger, string rootKeyFile);
}

/// <summary>Where the root key came from: the environment, or a generated development file.</summary>
public sealed record RootKeySource(string? GeneratedFile);
