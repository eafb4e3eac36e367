using System.Security.Cryptography;

namespace Convergence.Api.Configuration;

/// <summary>
/// Development convenience: with no <c>CA_ROOT_API_KEY</c>, a random root key is generated once into
/// <c>{data}/root-api-key</c> (mode 0600) and reused on later starts.
/// </summary>
public static class RootKeyProvisioning
{
    public const string FileName = "root-api-key";

    /// <summary>Returns the root key to use and, when it came from the file, the file's path.</summary>
    public static (string Key, string? GeneratedFile) Resolve(ConvergenceSettings settings)
    {
        if (settings.RootApiKey is { } configured)
        {
            return (configured, null);
        }

        if (settings.Environment.IsProduction)
        {
            throw new InvalidSettingsException(["CA_ROOT_API_KEY is required in production."]);
        }

        Directory.CreateDirectory(settings.DataDirectory);
        var path = Path.Combine(settings.DataDirectory, FileName);
        if (!File.Exists(path))
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            try
            {
                using var writer = new StreamWriter(new FileStream(path, options));
                writer.Write(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another instance wrote it first.
            }
        }

        var key = File.ReadAllText(path).Trim();
        if (key.Length < ConvergenceSettings.MinRootKeyLength)
        {
            throw new InvalidSettingsException([$"{path} holds a root key shorter than {ConvergenceSettings.MinRootKeyLength} characters; delete it to regenerate."]);
        }

        return (key, path);
    }
}
