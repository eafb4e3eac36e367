using System.Text.RegularExpressions;
using Convergence.Core.Errors;

namespace Convergence.Processors.Imports;

/// <summary>
/// The one folder file imports are read from (<c>CONVERGENCE_IMPORT_DIR</c>). Tenants name files relative to it; nothing
/// outside it can be reached, whether by an absolute path, <c>..</c>, a URI scheme or a symbolic link.
/// </summary>
public sealed partial class ImportDirectory
{
    public ImportDirectory(string root)
    {
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
    }

    /// <summary>The folder, as configured (absolute).</summary>
    public string Root { get; }

    /// <summary>
    /// The real path of the existing file <paramref name="relativePath"/> names inside the folder.
    /// </summary>
    /// <param name="parameter">The request field that carried the path, named in the 422.</param>
    /// <exception cref="RequestValidationException">The path is missing, unsafe, outside the folder or not a file.</exception>
    public string Resolve(string? relativePath, string parameter)
    {
        if (string.IsNullOrWhiteSpace(relativePath))
        {
            throw RequestValidationException.For(parameter, "is required: a file path relative to the import folder (CONVERGENCE_IMPORT_DIR).");
        }

        if (SchemePattern().IsMatch(relativePath))
        {
            throw RequestValidationException.For(parameter, "must be a path relative to the import folder; URIs and drive letters are not accepted.");
        }

        if (Path.IsPathRooted(relativePath) || relativePath[0] is '/' or '\\' or '~')
        {
            throw RequestValidationException.For(parameter, "must be relative to the import folder, not an absolute path.");
        }

        if (relativePath.Contains('\\', StringComparison.Ordinal) || relativePath.Any(char.IsControl))
        {
            throw RequestValidationException.For(parameter, "may contain neither backslashes nor control characters; separate folders with '/'.");
        }

        if (relativePath.Split('/').Any(segment => segment == ".."))
        {
            throw RequestValidationException.For(parameter, "may not contain '..' segments.");
        }

        var full = Path.GetFullPath(Path.Combine(Root, relativePath));
        if (!IsInside(full, Root))
        {
            throw RequestValidationException.For(parameter, "must name a file inside the import folder.");
        }

        // Links may point anywhere: compare real paths, every link on the way resolved.
        var realRoot = RealPath(Root);
        var real = RealPath(full);
        if (!IsInside(real, realRoot))
        {
            throw RequestValidationException.For(parameter, "leads outside the import folder through a symbolic link.");
        }

        if (Directory.Exists(real))
        {
            throw RequestValidationException.For(parameter, $"'{relativePath}' is a folder; name a file.");
        }

        if (!File.Exists(real))
        {
            throw RequestValidationException.For(parameter, $"no file '{relativePath}' in the import folder; copy the export there first.");
        }

        return real;
    }

    private static bool IsInside(string path, string root) =>
        path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The path with every symbolic link among its components resolved; components that do not exist stay as given.</summary>
    private static string RealPath(string fullPath)
    {
        var root = Path.GetPathRoot(fullPath)!;
        var current = root;
        var pending = new Queue<string>(fullPath[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries));
        var hops = 0;
        while (pending.Count > 0)
        {
            var next = Path.Combine(current, pending.Dequeue());
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is { } target)
            {
                if (++hops > 40)
                {
                    throw new IOException($"Too many symbolic links resolving '{fullPath}'.");
                }

                // Resolve the target against the link's folder, then walk it again: it may hold links itself.
                var resolved = Path.GetFullPath(target, current);
                var rest = pending.ToArray();
                var resolvedRoot = Path.GetPathRoot(resolved)!;
                pending = new Queue<string>(resolved[resolvedRoot.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Concat(rest));
                current = resolvedRoot;
                continue;
            }

            current = next;
        }

        return current;
    }

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9+.-]*:")]
    private static partial Regex SchemePattern();
}
