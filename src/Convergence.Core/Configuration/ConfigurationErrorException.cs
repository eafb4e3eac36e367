namespace Convergence.Core.Configuration;

/// <summary>A file under <c>configs/</c> is invalid; the message names the file, line and field.</summary>
public sealed class ConfigurationErrorException(string file, long? line, string? field, string problem)
    : Exception(Format(file, line, field, problem))
{
    public string File { get; } = file;

    public long? Line { get; } = line;

    public string? Field { get; } = field;

    public string Problem { get; } = problem;

    private static string Format(string file, long? line, string? field, string problem) =>
        $"{file}{(line is null ? string.Empty : $":{line}")}{(field is null ? string.Empty : $" ({field})")}: {problem}";
}
