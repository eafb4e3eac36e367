using Convergence.Api.Apis;
using Convergence.Api.Configuration;
using Convergence.Api.Extensions;

var builder = WebApplication.CreateBuilder(args);
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
app.UseConvergenceHttp();
app.MapHealthApi();
app.MapAdminApi();
app.MapOrganizationsApi();
app.AnnounceRootKey();
await app.RunAsync();

/// <summary>The entry point, visible to <c>WebApplicationFactory</c>.</summary>
public partial class Program;
