namespace Convergence.Core.Organizations;

/// <summary>
/// A dataset, the unit of isolation: the central <c>organizations</c> dataset or one org's <c>{org_slug}_{env}</c>.
/// </summary>
/// <remarks>
/// Storage calls take a <see cref="DatasetRef"/> rather than a name so the owning org is always explicit:
/// an org dataset can only be built from a validated <see cref="OrgSlug"/>.
/// </remarks>
public sealed record DatasetRef
{
    public const string CentralName = "organizations";

    private DatasetRef(string name, OrgSlug? owner)
    {
        Name = name;
        Owner = owner;
    }

    /// <summary>The dataset name, safe to use as a file, schema or dataset identifier.</summary>
    public string Name { get; }

    /// <summary>The org that owns the dataset; <c>null</c> for the central dataset.</summary>
    public OrgSlug? Owner { get; }

    public bool IsCentral => Owner is null;

    public static DatasetRef Central { get; } = new(CentralName, null);

    public static DatasetRef ForOrg(OrgSlug org, DeploymentEnvironment environment) =>
        new($"{org.Value}_{environment.DatasetSuffix}", org);

    public override string ToString() => Name;
}
