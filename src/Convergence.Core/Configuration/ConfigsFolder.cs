namespace Convergence.Core.Configuration;

/// <summary>The <c>configs/</c> folder: the single source of truth for pipelines, table schemas and seed data.</summary>
public sealed class ConfigsFolder
{
    public ConfigsFolder(string root)
    {
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (!Directory.Exists(Root))
        {
            throw new ConfigurationErrorException(Root, null, null, "the configs folder does not exist (set CONVERGENCE_CONFIGS_DIR)");
        }
    }

    /// <summary>The absolute path of the folder, without a trailing separator.</summary>
    public string Root { get; }

    /// <summary>Resolves a path relative to <c>configs/</c>; a path that leaves the folder is an error.</summary>
    public string Resolve(string relativePath)
    {
        var full = Path.GetFullPath(Path.Combine(Root, relativePath));
        if (!full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ConfigurationErrorException(relativePath, null, null, "the path leaves the configs folder");
        }

        return full;
    }
}
