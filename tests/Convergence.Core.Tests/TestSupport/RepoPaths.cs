namespace Convergence.Core.Tests.TestSupport;

/// <summary>Locates the repository root (the folder holding Convergence.slnx) from the test binaries.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    public static string Root => LazyRoot.Value;

    public static string Configs => Path.Combine(Root, "configs");

    public static string BootstrapSchemas => Path.Combine(Configs, "setup", "bootstrap", "schemas");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Convergence.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No folder containing Convergence.slnx above {AppContext.BaseDirectory}.");
    }
}
