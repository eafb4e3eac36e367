namespace Convergence.Core.Organizations;

/// <summary>
/// The outcome of parsing untrusted text: a value, or the reason it was rejected.
/// Expected failures are values, not exceptions.
/// </summary>
public readonly struct ParseResult<T>
{
    private readonly T? _value;

    private ParseResult(T? value, string? error)
    {
        _value = value;
        Error = error;
    }

    public bool IsSuccess => Error is null;

    /// <summary>Why the text was rejected; <c>null</c> on success.</summary>
    public string? Error { get; }

    public T Value => IsSuccess ? _value! : throw new InvalidOperationException($"No value: {Error}");

    public static ParseResult<T> Success(T value) => new(value, null);

    public static ParseResult<T> Failure(string error) => new(default, error);

    public T GetValueOrThrow() => IsSuccess ? _value! : throw new FormatException(Error);
}
