using System.Collections.Concurrent;
using Convergence.Core.Configuration;
using Convergence.Core.Errors;

namespace Convergence.Core.Pipelines;

/// <summary>
/// Resolves pipeline paths to definitions under the <c>configs/</c> root, and nowhere else.
/// </summary>
/// <remarks>
/// Paths come from URLs, so each segment must match <c>^[a-z0-9_]+$</c>: no dots, slashes or traversal.
/// Definitions are parsed once, checked against the registered processors and table schemas, and cached.
/// </remarks>
public sealed class PipelineCatalog
{
    /// <summary>Folders whose pipelines only the platform runs (bootstrap, onboarding, credential flows).</summary>
    public static readonly IReadOnlyList<string> PlatformFolders = ["setup", "integrations", "notify_systems"];

    private readonly ConcurrentDictionary<string, PipelineDefinition> _cache = new(StringComparer.Ordinal);
    private readonly PipelineLoadContext _context;

    private readonly ConfigsFolder _folder;

    public PipelineCatalog(string configsRoot, PipelineLoadContext? context = null)
        : this(new ConfigsFolder(configsRoot), context)
    {
    }

    public PipelineCatalog(ConfigsFolder folder, PipelineLoadContext? context = null)
    {
        _folder = folder;
        _context = context ?? PipelineLoadContext.Unchecked;
    }

    /// <summary>The absolute path of the <c>configs/</c> folder.</summary>
    public string ConfigsRoot => _folder.Root;

    /// <summary>Gets the pipeline at <paramref name="path"/> (such as <c>setup/bootstrap/pipeline</c>).</summary>
    /// <exception cref="ResourceNotFoundException">No such pipeline, or the path is not a safe config path.</exception>
    public PipelineDefinition Get(string path)
    {
        if (!IsSafePath(path))
        {
            throw new ResourceNotFoundException("Pipeline", path);
        }

        return _cache.GetOrAdd(path, static (p, self) =>
        {
            var file = self.FileOf(p);
            if (!File.Exists(file))
            {
                throw new ResourceNotFoundException("Pipeline", p);
            }

            return PipelineLoader.LoadFile(file, p, self._context);
        }, this);
    }

    /// <summary>Every pipeline path under <c>configs/</c>, in order.</summary>
    public IReadOnlyList<string> ListPaths() =>
        [.. Directory.EnumerateFiles(ConfigsRoot, "*.yml", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(ConfigsRoot, f)[..^4].Replace(Path.DirectorySeparatorChar, '/'))
            .Where(IsSafePath)
            .Order(StringComparer.Ordinal)];

    /// <summary>Loads every pipeline and returns the errors (empty when all are valid).</summary>
    public IReadOnlyList<ConfigurationErrorException> ValidateAll()
    {
        var errors = new List<ConfigurationErrorException>();
        foreach (var file in Directory.EnumerateFiles(ConfigsRoot, "*.yml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var path = Path.GetRelativePath(ConfigsRoot, file)[..^4].Replace(Path.DirectorySeparatorChar, '/');
            if (!IsSafePath(path))
            {
                errors.Add(new ConfigurationErrorException(file, null, null, "pipeline file names and folders must be lowercase [a-z0-9_] segments, at most 5 deep"));
                continue;
            }

            try
            {
                _ = Get(path);
            }
            catch (ConfigurationErrorException ex)
            {
                errors.Add(ex);
            }
        }

        return errors;
    }

    /// <summary>Validates one YAML text as if it were at <paramref name="path"/>, without caching it.</summary>
    public PipelineDefinition Validate(string yaml, string sourceName, string path) => PipelineLoader.Parse(yaml, sourceName, path, _context);

    /// <summary>Whether an org may run the pipeline at <paramref name="path"/> through the run API.</summary>
    public static bool IsOrgRunnable(string path) => IsSafePath(path) && !PlatformFolders.Contains(path.Split('/')[0]);

    /// <summary>Resolves a path relative to <c>configs/</c> for a non-pipeline file (schemas, seed data).</summary>
    public string ResolveFile(string relativePath) => _folder.Resolve(relativePath);

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

    private string FileOf(string path) => Path.Combine(ConfigsRoot, path.Replace('/', Path.DirectorySeparatorChar) + ".yml");
}
