namespace Convergence.IntegrationTests.Support;

/// <summary>Copies of the repository's <c>configs/</c> folder with test files added.</summary>
public static class TestConfigs
{
    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    /// <summary>The repository root: the first folder above the test binaries holding <c>Convergence.slnx</c>.</summary>
    public static string RepositoryRoot => Root.Value;

    /// <summary>The repository's own <c>configs/</c> folder (never written to).</summary>
    public static string RepositoryConfigs => Path.Combine(RepositoryRoot, "configs");

    /// <summary>
    /// Writes a copy of the repository's <c>configs/</c> to <paramref name="target"/> (replacing what is there) and adds
    /// <paramref name="extraFiles"/>: paths relative to <c>configs/</c> with '/' separators, mapped to their text.
    /// </summary>
    public static string WriteCopy(string target, IReadOnlyDictionary<string, string> extraFiles)
    {
        if (Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }

        foreach (var file in Directory.EnumerateFiles(RepositoryConfigs, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(RepositoryConfigs, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }

        foreach (var (relative, text) in extraFiles)
        {
            var destination = Path.Combine(target, relative.Replace('/', Path.DirectorySeparatorChar));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.WriteAllText(destination, text);
        }

        return target;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Convergence.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Convergence.slnx above {AppContext.BaseDirectory}.");
    }
}
