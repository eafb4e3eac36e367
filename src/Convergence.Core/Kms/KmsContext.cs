using System.Text;
using Convergence.Core.Organizations;

namespace Convergence.Core.Kms;

/// <summary>
/// What a ciphertext is bound to: the org, the purpose (such as <c>org_api_key</c> or a provider name) and the id
/// of the record. Used as associated data, never stored in clear beside the secret.
/// </summary>
public sealed record KmsContext(OrgSlug? Org, string Purpose, string SubjectId)
{
    /// <summary>
    /// The associated data: each field length-prefixed, so no choice of values can make two contexts encode alike.
    /// </summary>
    public byte[] ToAssociatedData()
    {
        static string Field(string name, string value) => $"{name}:{value.Length}:{value}";
        return Encoding.UTF8.GetBytes($"convergence/v1|{Field("org", Org?.Value ?? string.Empty)}|{Field("purpose", Purpose)}|{Field("id", SubjectId)}");
    }

    public static KmsContext ForOrgApiKey(OrgSlug org, string keyId) => new(org, "org_api_key", keyId);
}
