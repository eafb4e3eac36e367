using Convergence.Core.Configuration;
using Convergence.Core.Pipelines;

namespace Convergence.Api.Configuration;

/// <summary>Validation of pipeline configs: every shipped one at startup, or named files on demand.</summary>
public static class ConfigValidation
{
    /// <summary>Loads every pipeline under <c>configs/</c>; returns one message per invalid file.</summary>
    public static IReadOnlyList<string> ValidateShippedConfigs(IServiceProvider services) =>
        [.. services.GetRequiredService<PipelineCatalog>().ValidateAll().Select(e => e.Message)];

    /// <summary>
    /// The <c>validate</c> command: checks the named files (or all of <c>configs/</c>), prints each result, and returns
    /// the exit code (0 valid, 1 invalid).
    /// </summary>
    public static Task<int> RunCommandAsync(IServiceProvider services, IReadOnlyList<string> files, TextWriter output, TextWriter errors)
    {
        var catalog = services.GetRequiredService<PipelineCatalog>();
        if (files.Count == 0)
        {
            var problems = catalog.ValidateAll();
            foreach (var problem in problems)
            {
                errors.WriteLine(problem.Message);
            }

            output.WriteLine(problems.Count == 0 ? $"All {catalog.ListPaths().Count} pipelines under {catalog.ConfigsRoot} are valid." : $"{problems.Count} invalid pipeline(s).");
            return Task.FromResult(problems.Count == 0 ? 0 : 1);
        }

        var invalid = 0;
        foreach (var file in files)
        {
            try
            {
                var text = File.ReadAllText(file);
                var definition = catalog.Validate(text, file, "validate/file");
                output.WriteLine($"{file}: valid ({definition.Steps.Count} step(s): {string.Join(", ", definition.Steps.Select(s => s.StepId))})");
            }
            catch (ConfigurationErrorException ex)
            {
                errors.WriteLine(ex.Message);
                invalid++;
            }
            catch (IOException ex)
            {
                errors.WriteLine($"{file}: cannot read: {ex.Message}");
                invalid++;
            }
        }

        return Task.FromResult(invalid == 0 ? 0 : 1);
    }
}
