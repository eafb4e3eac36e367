namespace Convergence.Core.Integrations;

/// <summary>A provider an org can connect: its route name and the name stored on credentials.</summary>
public sealed record IntegrationProvider(string RouteName, string StoredName)
{
    public static readonly IntegrationProvider Gcp = new("gcp", "GCP_SA");
    public static readonly IntegrationProvider OpenAi = new("openai", "OPENAI");
    public static readonly IntegrationProvider Anthropic = new("anthropic", "ANTHROPIC");
    public static readonly IntegrationProvider DeepSeek = new("deepseek", "DEEPSEEK");

    public static IReadOnlyList<IntegrationProvider> All { get; } = [Gcp, OpenAi, Anthropic, DeepSeek];

    public static bool TryFromRoute(string? routeName, out IntegrationProvider provider)
    {
        provider = All.FirstOrDefault(p => p.RouteName == routeName)!;
        return provider is not null;
    }

    public static IntegrationProvider FromStored(string storedName) =>
        All.FirstOrDefault(p => p.StoredName == storedName) ?? throw new InvalidOperationException($"Unknown stored provider '{storedName}'.");

    public override string ToString() => RouteName;
}

/// <summary>Validation states of a stored credential.</summary>
public static class CredentialStatus
{
    /// <summary>The provider accepted it.</summary>
    public const string Valid = "VALID";

    /// <summary>The provider refused it (401/403); runs needing it fail until it is replaced.</summary>
    public const string Invalid = "INVALID";

    /// <summary>Not yet checked, or the check could not reach the provider (timeout, 5xx); kept, not lost.</summary>
    public const string Pending = "PENDING";
}
