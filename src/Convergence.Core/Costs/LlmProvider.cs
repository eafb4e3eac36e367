namespace Convergence.Core.Costs;

/// <summary>The LLM providers whose token usage Convergence prices from an org's price list.</summary>
public enum LlmProvider
{
    OpenAI,
    Anthropic,
    DeepSeek,
}
