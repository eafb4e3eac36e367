using Convergence.Api.Apis;
using Convergence.Api.Configuration;
using Convergence.Api.Extensions;

var builder = WebApplication.CreateBuilder(args);

// `demo` runs the whole job on the embedded default with sample data, prints the cost, and exits.
var demo = args.Length > 0 && args[0] == "demo";
if (demo)
{
    builder.Configuration.AddInMemoryCollection(Convergence.Api.Demo.DemoCommand.Settings(builder.Configuration["CONVERGENCE_DATA_DIR"]));
    builder.WebHost.UseUrls("http://127.0.0.1:0");
}

ConvergenceSettings settings;
try
{
    settings = builder.AddConvergenceSettings();
}
catch (InvalidSettingsException ex)
{
    await Console.Error.WriteLineAsync(ex.Message);
    Environment.ExitCode = 2;
    return;
}

builder.AddConvergenceLogging();
builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = settings.MaxRequestBodyBytes);
builder.Services
    .AddConvergenceCore(settings)
    .AddConvergenceAuth(settings)
    .AddConvergenceHttp(settings);

var app = builder.Build();

// `validate [file.yml ...]` checks pipeline files (all of configs/ when none are named) and exits.
if (args.Length > 0 && args[0] == "validate")
{
    Environment.ExitCode = await ConfigValidation.RunCommandAsync(app.Services, args[1..], Console.Out, Console.Error);
    return;
}

// A broken shipped config stops the service here, with every error named, instead of failing a run later.
if (ConfigValidation.ValidateShippedConfigs(app.Services) is { Count: > 0 } problems)
{
    await Console.Error.WriteLineAsync($"Convergence cannot start: {problems.Count} invalid pipeline config(s):{Environment.NewLine}  - {string.Join(Environment.NewLine + "  - ", problems)}");
    Environment.ExitCode = 2;
    return;
}

app.UseConvergenceHttp();
app.MapHealthApi();
app.MapAdminApi();
app.MapKmsAdminApi();
app.MapOrganizationsApi();
app.MapPipelinesApi();
app.MapPricingApi();
app.MapIntegrationsApi();
app.MapSubscriptionsApi();
app.MapSchedulesApi();
app.MapUsageEventsApi();
app.MapDataApi();
app.MapSchedulerApi();
if (demo)
{
    Environment.ExitCode = await Convergence.Api.Demo.DemoCommand.RunAsync(app, settings.RootApiKey!, settings.ConfigsDirectory, settings.ImportDirectory, Console.Out, CancellationToken.None);
    return;
}

app.AnnounceRootKey();
await app.RunAsync();

/// <summary>The entry point, visible to <c>WebApplicationFactory</c>.</summary>
public partial class Program;
