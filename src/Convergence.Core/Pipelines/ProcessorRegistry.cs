using System.Diagnostics.CodeAnalysis;

namespace Convergence.Core.Pipelines;

/// <summary>Looks processors up by <c>ps_type</c>.</summary>
public sealed class ProcessorRegistry
{
    private readonly Dictionary<string, IProcessor> _processors;

    public ProcessorRegistry(IEnumerable<IProcessor> processors)
    {
        _processors = new Dictionary<string, IProcessor>(StringComparer.Ordinal);
        foreach (var processor in processors)
        {
            if (!_processors.TryAdd(processor.PsType, processor))
            {
                throw new InvalidOperationException($"Two processors are registered for ps_type '{processor.PsType}'.");
            }
        }
    }

    public IReadOnlyCollection<string> PsTypes => _processors.Keys;

    public bool TryGet(string psType, [NotNullWhen(true)] out IProcessor? processor) => _processors.TryGetValue(psType, out processor);

    public IProcessor Get(string psType) =>
        TryGet(psType, out var processor)
            ? processor
            : throw new InvalidOperationException(
                $"No processor is registered for ps_type '{psType}'. Known: {string.Join(", ", _processors.Keys.Order(StringComparer.Ordinal))}. Register it with AddProcessor<T>().");
}
