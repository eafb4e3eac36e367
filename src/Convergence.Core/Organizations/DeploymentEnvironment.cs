namespace Convergence.Core.Organizations;

/// <summary>The deployment environment and the suffix it gives org datasets.</summary>
public sealed record DeploymentEnvironment(string Name, string DatasetSuffix)
{
    public static readonly DeploymentEnvironment Development = new("development", "local");
    public static readonly DeploymentEnvironment Staging = new("staging", "stage");
    public static readonly DeploymentEnvironment Production = new("production", "prod");

    public static IReadOnlyList<DeploymentEnvironment> All { get; } = [Development, Staging, Production];

    public bool IsProduction => ReferenceEquals(this, Production);

    public static bool TryParse(string? name, out DeploymentEnvironment environment)
    {
        environment = All.FirstOrDefault(e => string.Equals(e.Name, name?.Trim(), StringComparison.OrdinalIgnoreCase))!;
        return environment is not null;
    }

    public override string ToString() => Name;
}
