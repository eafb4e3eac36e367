using Convergence.Core.Pipelines;
using Convergence.Processors.Anthropic;
using Convergence.Processors.Flow;
using Convergence.Processors.Gcp;
using Convergence.Processors.Focus;
using Convergence.Processors.Integrations;
using Convergence.Processors.Llm;
using Convergence.Processors.OpenAi;
using Convergence.Processors.Setup;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Convergence.Processors;

/// <summary>Registers processors by <c>ps_type</c>.</summary>
public static class ProcessorServiceCollectionExtensions
{
    public static IServiceCollection AddProcessor<TProcessor>(this IServiceCollection services)
        where TProcessor : class, IProcessor
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProcessor, TProcessor>());
        return services;
    }

    /// <summary>
    /// Adds every processor this assembly provides, and the BigQuery source of <c>gcp.bq_etl</c> (which needs a
    /// <see cref="Gcp.BigQuery.BigQueryClient"/> registered by the host).
    /// </summary>
    public static IServiceCollection AddConvergenceProcessors(this IServiceCollection services)
    {
        services.TryAddSingleton<Gcp.BigQuery.BigQuerySource>();
        return services
            .AddProcessor<BootstrapProcessor>()
            .AddProcessor<DryRunProcessor>()
            .AddProcessor<OnboardingProcessor>()
            .AddProcessor<BigQueryEtlProcessor>()
            .AddProcessor<NoopProcessor>()
            .AddProcessor<ValidateOpenAiProcessor>()
            .AddProcessor<ValidateClaudeProcessor>()
            .AddProcessor<ValidateDeepSeekProcessor>()
            .AddProcessor<ValidateGcpProcessor>()
            .AddProcessor<KmsStoreProcessor>()
            .AddProcessor<KmsDecryptProcessor>()
            .AddProcessor<SeedTablesProcessor>()
            .AddProcessor<OpenAiCostProcessor>()
            .AddProcessor<AnthropicCostProcessor>()
            .AddProcessor<DeepSeekCostProcessor>()
            .AddProcessor<FocusNormalizeProcessor>()
            .AddProcessor<DeepSeek.DeepSeekBalanceProcessor>()
            .AddProcessor<CostReconciliationProcessor>()
            .AddProcessor<OpenAiSubscriptionsProcessor>()
            .AddProcessor<OpenAiUsageProcessor>()
            .AddProcessor<OpenAiCostsProcessor>()
            .AddProcessor<AnthropicUsageProcessor>()
            .AddProcessor<AnthropicCostsProcessor>();
    }
}
