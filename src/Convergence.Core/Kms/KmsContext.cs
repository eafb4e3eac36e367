using System.Text;
using Convergence.Core.Organizations;

namespace Convergence.Core.Kms;

/// <summary>
/// What a ciphertext is bound to: the org, the purpose (such as <c>org_api_key</c> or a provider name) and the id
/// of the record. Used as associated data, never stored in clear beside the secret.
/// </summary>
public sealed record KmsContext(OrgSlug? Org, string Purpose, string SubjectId)
{
    public byte[] ToAssociatedData() =>
        Encoding.UTF8.GetBytes($"convergence/v1|org={Org?.Value ?? "-"}|purpose={Purpose}|id={SubjectId}");

    public static KmsContext ForOrgApiKey(OrgSlug org, string keyId) => new(org, "org_api_key", keyId);
}
