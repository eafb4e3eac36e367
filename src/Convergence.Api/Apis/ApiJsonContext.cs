using System.Text.Json.Serialization;

namespace Convergence.Api.Apis;

/// <summary>
/// Source-generated JSON metadata for the API's bodies: no reflection on the hot paths. Types not listed here fall
/// back to the reflection resolver behind it in the chain.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(BootstrapBody))]
[JsonSerializable(typeof(BootstrapResponse))]
[JsonSerializable(typeof(OrganizationBody))]
[JsonSerializable(typeof(DryRunResponse))]
[JsonSerializable(typeof(OnboardResponse))]
[JsonSerializable(typeof(OrganizationResponse))]
[JsonSerializable(typeof(OrganizationPatchBody))]
[JsonSerializable(typeof(OffboardResponse))]
[JsonSerializable(typeof(ApiKeyIssueBody))]
[JsonSerializable(typeof(ApiKeyIssuedResponse))]
[JsonSerializable(typeof(ApiKeyListResponse))]
[JsonSerializable(typeof(ApiKeyRevokedResponse))]
[JsonSerializable(typeof(RunAcceptedResponse))]
[JsonSerializable(typeof(RunListResponse))]
[JsonSerializable(typeof(IntegrationSetupBody))]
[JsonSerializable(typeof(IntegrationListResponse))]
[JsonSerializable(typeof(IntegrationResponse))]
[JsonSerializable(typeof(IntegrationSetupResponse))]
[JsonSerializable(typeof(IntegrationValidateResponse))]
[JsonSerializable(typeof(IntegrationDeletedResponse))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(KmsRotateBody))]
[JsonSerializable(typeof(KmsRotateResponse))]
[JsonSerializable(typeof(OpenAiSubscriptionBody))]
[JsonSerializable(typeof(OpenAiSubscriptionListResponse))]
[JsonSerializable(typeof(OpenAiSubscriptionResponse))]
[JsonSerializable(typeof(OpenAiSubscriptionDeletedResponse))]
[JsonSerializable(typeof(OpenAiSubscriptionResetResponse))]
[JsonSerializable(typeof(UsageEventsBody))]
[JsonSerializable(typeof(UsageEventsResponse))]
[JsonSerializable(typeof(DailyCostsResponse))]
[JsonSerializable(typeof(ScheduleBody))]
[JsonSerializable(typeof(ScheduleResponse))]
[JsonSerializable(typeof(ScheduleListResponse))]
[JsonSerializable(typeof(ScheduleDeletedResponse))]
internal sealed partial class ApiJsonContext : JsonSerializerContext;
