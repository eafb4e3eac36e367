namespace Convergence.Core.Focus;

/// <summary>
/// Checks <see cref="FocusRow"/>s against the column rules of a <see cref="FocusColumnCatalog"/>: non-null where the
/// catalog disallows nulls, allowed values, currency and UTC date/time formats, periods that end after they start,
/// and the cost sign and quantity/unit rules of the specification.
/// </summary>
/// <remarks>
/// Cost sign rules (FOCUS 1.2, outside corrections): Usage, Purchase and Tax rows have BilledCost, ListCost and
/// ContractedCost of zero or more; Credit rows have BilledCost and EffectiveCost of zero or less. Adjustment rows and
/// rows with ChargeClass Correction may have either sign.
/// </remarks>
public sealed class FocusValidator
{
    private readonly (FocusColumn Column, Func<FocusRow, object?> Read)[] _notNull;

    /// <exception cref="InvalidOperationException">
    /// <see cref="FocusRow"/> lacks a Mandatory column of the catalog, carries a column the catalog does not know, or
    /// types a column otherwise than the catalog's data type.
    /// </exception>
    public FocusValidator(FocusColumnCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var missing = catalog.Mandatory.Select(c => c.Id).Where(id => !FocusRow.Columns.ContainsKey(id)).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException($"FocusRow lacks the Mandatory FOCUS columns {string.Join(", ", missing)}; add them to FocusRow.");
        }

        var unknown = FocusRow.Columns.Keys.Where(id => !catalog.TryGet(id, out _)).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidOperationException($"FocusRow carries {string.Join(", ", unknown)}, which the FOCUS catalog does not list.");
        }

        var mistyped = FocusRow.Columns.Keys
            .Select(id => (Column: catalog.Get(id), Type: typeof(FocusRow).GetProperty(id)!.PropertyType))
            .Where(c => !MatchesDataType(c.Column.DataType, c.Type))
            .Select(c => $"{c.Column.Id} ({c.Column.DataType}, FocusRow has {c.Type.Name})")
            .ToList();
        if (mistyped.Count > 0)
        {
            throw new InvalidOperationException($"FocusRow types differ from the FOCUS catalog: {string.Join(", ", mistyped)}.");
        }

        Catalog = catalog;
        _notNull = [.. FocusRow.Columns.Select(c => (catalog.Get(c.Key), c.Value)).Where(c => !c.Item1.AllowsNulls)];
    }

    public FocusColumnCatalog Catalog { get; }

    /// <summary>Every violation of every row, in row order; empty when all rows are valid.</summary>
    public IReadOnlyList<FocusViolation> Validate(IEnumerable<FocusRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var violations = new List<FocusViolation>();
        var index = 0;
        foreach (var row in rows)
        {
            ValidateRow(row, index++, violations);
        }

        return violations;
    }

    /// <summary>Adds the violations of one row, numbered <paramref name="index"/>, to <paramref name="violations"/>.</summary>
    public void ValidateRow(FocusRow row, int index, List<FocusViolation> violations)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(violations);
        void Add(string column, string rule, string message) => violations.Add(new FocusViolation(index, column, rule, message));

        foreach (var (column, read) in _notNull)
        {
            var value = read(row);
            if (value is null || value is string { Length: 0 })
            {
                Add(column.Id, "not-null", $"{column.Id} must hold a value ({column.PresenceRule})");
            }
        }

        CheckAllowed(nameof(FocusRow.ChargeCategory), row.ChargeCategory, FocusAllowedValues.ChargeCategory, Add);
        CheckAllowed(nameof(FocusRow.ChargeClass), row.ChargeClass, FocusAllowedValues.ChargeClass, Add);
        CheckAllowed(nameof(FocusRow.ChargeFrequency), row.ChargeFrequency, FocusAllowedValues.ChargeFrequency, Add);
        CheckAllowed(nameof(FocusRow.PricingCategory), row.PricingCategory, FocusAllowedValues.PricingCategory, Add);
        CheckAllowed(nameof(FocusRow.ServiceCategory), row.ServiceCategory, FocusAllowedValues.ServiceCategory, Add);
        if (row.ServiceSubcategory is { Length: > 0 } subcategory && row.ServiceCategory is { } category
            && FocusAllowedValues.ServiceSubcategory.TryGetValue(category, out var subcategories) && !subcategories.Contains(subcategory))
        {
            Add(nameof(FocusRow.ServiceSubcategory), "allowed-values", $"'{subcategory}' is not a subcategory of '{category}'");
        }

        if (row.BillingCurrency is { Length: > 0 } currency && !IsCurrencyCode(currency))
        {
            Add(nameof(FocusRow.BillingCurrency), "currency-format", $"'{currency}' is not an ISO 4217 alphabetic code such as USD");
        }

        CheckPeriod(nameof(FocusRow.ChargePeriodStart), row.ChargePeriodStart, nameof(FocusRow.ChargePeriodEnd), row.ChargePeriodEnd, Add);
        CheckPeriod(nameof(FocusRow.BillingPeriodStart), row.BillingPeriodStart, nameof(FocusRow.BillingPeriodEnd), row.BillingPeriodEnd, Add);
        CheckCostSigns(row, Add);

        if (row.ConsumedQuantity is not null && row.ChargeCategory != "Usage")
        {
            Add(nameof(FocusRow.ConsumedQuantity), "usage-only", $"ConsumedQuantity must be null when ChargeCategory is '{row.ChargeCategory}', not Usage");
        }

        if (row.ConsumedQuantity is not null && string.IsNullOrEmpty(row.ConsumedUnit))
        {
            Add(nameof(FocusRow.ConsumedUnit), "unit-with-quantity", "ConsumedUnit must hold a value when ConsumedQuantity does");
        }

        if (row.PricingQuantity is not null && string.IsNullOrEmpty(row.PricingUnit))
        {
            Add(nameof(FocusRow.PricingUnit), "unit-with-quantity", "PricingUnit must hold a value when PricingQuantity does");
        }

        if (row.Tags is { } tags && tags.Keys.Any(string.IsNullOrWhiteSpace))
        {
            Add(nameof(FocusRow.Tags), "key-value-format", "every tag needs a non-empty key");
        }
    }

    private static void CheckAllowed(string column, string? value, IReadOnlySet<string> allowed, Action<string, string, string> add)
    {
        if (value is { Length: > 0 } && !allowed.Contains(value))
        {
            add(column, "allowed-values", $"'{value}' is not one of: {string.Join(", ", allowed)}");
        }
    }

    private static void CheckPeriod(string startColumn, DateTimeOffset start, string endColumn, DateTimeOffset end, Action<string, string, string> add)
    {
        if (start.Offset != TimeSpan.Zero)
        {
            add(startColumn, "utc", $"{start:O} is not in UTC");
        }

        if (end.Offset != TimeSpan.Zero)
        {
            add(endColumn, "utc", $"{end:O} is not in UTC");
        }

        if (end <= start)
        {
            add(endColumn, "period-order", $"{endColumn} {end:O} must be after {startColumn} {start:O} (the end is exclusive)");
        }
    }

    private static void CheckCostSigns(FocusRow row, Action<string, string, string> add)
    {
        if (row.ChargeClass == "Correction")
        {
            return;
        }

        void AtLeastZero(string column, decimal value)
        {
            if (value < 0)
            {
                add(column, "cost-sign", $"{column} {value} is negative on a {row.ChargeCategory} row that is not a correction");
            }
        }

        void AtMostZero(string column, decimal value)
        {
            if (value > 0)
            {
                add(column, "cost-sign", $"{column} {value} is positive on a Credit row that is not a correction");
            }
        }

        switch (row.ChargeCategory)
        {
            case "Usage" or "Purchase" or "Tax":
                AtLeastZero(nameof(FocusRow.BilledCost), row.BilledCost);
                AtLeastZero(nameof(FocusRow.ListCost), row.ListCost);
                AtLeastZero(nameof(FocusRow.ContractedCost), row.ContractedCost);
                break;
            case "Credit":
                AtMostZero(nameof(FocusRow.BilledCost), row.BilledCost);
                AtMostZero(nameof(FocusRow.EffectiveCost), row.EffectiveCost);
                break;
        }
    }

    /// <summary>Decimal columns are decimal, Date/Time columns DateTimeOffset, JSON columns dictionaries, the rest strings.</summary>
    private static bool MatchesDataType(string dataType, Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return dataType switch
        {
            "Decimal" => type == typeof(decimal),
            "Date/Time" => type == typeof(DateTimeOffset),
            "JSON" => type == typeof(IReadOnlyDictionary<string, string>),
            _ => type == typeof(string),
        };
    }

    private static bool IsCurrencyCode(string value) => value.Length == 3 && value.All(char.IsAsciiLetterUpper);
}
