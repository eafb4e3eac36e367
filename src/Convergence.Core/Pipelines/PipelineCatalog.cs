using System.Collections.Concurrent;
using Convergence.Core.Configuration;
using Convergence.Core.Errors;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Resolves pipeline paths to definitions under the <c>configs/</c> root, and nowhere else.
/// </summary>
/// <remarks>
/// Paths come from URLs, so each segment must match <c>^[a-z0-9_]+$</c>: no dots, slashes or traversal.
/// Definitions are parsed once and cached; the files are the source of truth and are not written at run time.
/// </remarks>
public sealed class PipelineCatalog
{
    private readonly ConcurrentDictionary<string, PipelineDefinition> _cache = new(StringComparer.Ordinal);

    public PipelineCatalog(string configsRoot)
    {
        ConfigsRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(configsRoot));
        if (!Directory.Exists(ConfigsRoot))
        {
            throw new ConfigurationErrorException(ConfigsRoot, null, null, "the configs folder does not exist (set CONVERGENCE_CONFIGS_DIR)");
        }
    }

    /// <summary>The absolute path of the <c>configs/</c> folder.</summary>
    public string ConfigsRoot { get; }

    /// <summary>Gets the pipeline at <paramref name="path"/> (such as <c>setup/bootstrap/pipeline</c>).</summary>
    /// <exception cref="ResourceNotFoundException">No such pipeline, or the path is not a safe config path.</exception>
    public PipelineDefinition Get(string path)
    {
        if (!IsSafePath(path))
        {
            throw new ResourceNotFoundException("Pipeline", path);
        }

        return _cache.GetOrAdd(path, static (p, root) =>
        {
            var file = Path.Combine(root, p.Replace('/', Path.DirectorySeparatorChar) + ".yml");
            if (!File.Exists(file))
            {
                throw new ResourceNotFoundException("Pipeline", p);
            }

            return PipelineLoader.LoadFile(file, p);
        }, ConfigsRoot);
    }

    /// <summary>Resolves a path relative to <c>configs/</c> for a non-pipeline file (schemas, seed data).</summary>
    public string ResolveFile(string relativePath)
    {
        var full = Path.GetFullPath(Path.Combine(ConfigsRoot, relativePath));
        if (!full.StartsWith(ConfigsRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ConfigurationErrorException(relativePath, null, null, "the path leaves the configs folder");
        }

        return full;
    }

    /// <summary>Whether <paramref name="path"/> is made of 1–5 segments of <c>[a-z0-9_]</c> separated by '/'.</summary>
    public static bool IsSafePath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path.Length > 200)
        {
            return false;
        }

        var segments = path.Split('/');
        return segments.Length is >= 1 and <= 5 && segments.All(s => s.Length > 0 && s.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_'));
    }
}
