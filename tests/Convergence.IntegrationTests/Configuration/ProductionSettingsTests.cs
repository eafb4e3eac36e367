using Convergence.Api.Configuration;
using Microsoft.Extensions.Configuration;

namespace Convergence.IntegrationTests.Configuration;

/// <summary>Production refuses each unsafe setting on its own, naming it; a safe production configuration loads.</summary>
public sealed class ProductionSettingsTests
{
    private static Dictionary<string, string?> SafeProduction() => new()
    {
        ["ENVIRONMENT"] = "production",
        ["CONVERGENCE_DATA_DIR"] = "/var/lib/convergence",
        ["CA_ROOT_API_KEY"] = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
        ["CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION"] = "true",
        ["CORS_ORIGINS"] = "https://app.example.com",
    };

    private static ConvergenceSettings Load(Dictionary<string, string?> values) =>
        ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Load_SafeProductionConfig_Loads()
    {
        var settings = Load(SafeProduction());

        settings.Environment.IsProduction.ShouldBeTrue();
        settings.DisableAuth.ShouldBeFalse();
        settings.RateLimitEnabled.ShouldBeTrue();
        settings.CorsOrigins.ShouldBe(["https://app.example.com"]);
        settings.Kms.ShouldBe("local");
        settings.AllowLocalKmsInProduction.ShouldBeTrue();
        settings.MaxRequestBodyBytes.ShouldBe(1024 * 1024);
    }

    public static TheoryData<string, string?, string> UnsafeSettings { get; } = new()
    {
        { "CA_ROOT_API_KEY", null, "CA_ROOT_API_KEY" },
        { "CA_ROOT_API_KEY", "short-root-key", "CA_ROOT_API_KEY" },
        { "CA_ROOT_API_KEY", new string('a', 31), "CA_ROOT_API_KEY" },
        { "CA_ROOT_API_KEY", "changeme", "CA_ROOT_API_KEY" },
        { "CA_ROOT_API_KEY", "   changeme   ", "CA_ROOT_API_KEY" },
        { "CA_ROOT_API_KEY", "test-root-key-for-development-only-32chars", "CA_ROOT_API_KEY" },
        { "CA_ROOT_API_KEY", "TEST-ROOT-KEY-FOR-DEVELOPMENT-ONLY-32CHARS", "CA_ROOT_API_KEY" },
        { "DISABLE_AUTH", "true", "DISABLE_AUTH" },
        { "DISABLE_AUTH", "True", "DISABLE_AUTH" },
        { "RATE_LIMIT_ENABLED", "false", "RATE_LIMIT_ENABLED" },
        { "CORS_ORIGINS", "*", "CORS_ORIGINS" },
        { "CORS_ORIGINS", "https://app.example.com,*", "CORS_ORIGINS" },
        { "CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION", null, "CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION" },
        { "CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION", "false", "CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION" },
        { "BIGQUERY_BASE_URL", "http://bigquery.internal/bigquery/v2", "BIGQUERY_BASE_URL" },
    };

    [Theory]
    [MemberData(nameof(UnsafeSettings))]
    public void Load_ProductionWithOneUnsafeSetting_ThrowsNamingIt(string key, string? value, string named)
    {
        var values = SafeProduction();
        if (value is null)
        {
            values.Remove(key);
        }
        else
        {
            values[key] = value;
        }

        var ex = Should.Throw<InvalidSettingsException>(() => Load(values));

        ex.Problems.ShouldHaveSingleItem().ShouldContain(named);
        ex.Message.ShouldContain(named);
        if (value is { Length: > 0 } && key == "CA_ROOT_API_KEY")
        {
            ex.Message.ShouldNotContain(value.Trim(), Case.Sensitive, "the message must not print the rejected root key");
        }
    }

    [Fact]
    public void Load_ProductionWithEveryUnsafeSetting_ReportsThemAllAtOnce()
    {
        var ex = Should.Throw<InvalidSettingsException>(() => Load(new Dictionary<string, string?>
        {
            ["ENVIRONMENT"] = "production",
            ["DISABLE_AUTH"] = "true",
            ["RATE_LIMIT_ENABLED"] = "false",
            ["CORS_ORIGINS"] = "*",
        }));

        ex.Problems.Count.ShouldBe(5);
        foreach (var name in new[] { "CA_ROOT_API_KEY", "DISABLE_AUTH", "RATE_LIMIT_ENABLED", "CORS_ORIGINS", "CONVERGENCE_ALLOW_LOCAL_KMS_IN_PRODUCTION" })
        {
            ex.Message.ShouldContain(name);
        }
    }

    [Fact]
    public void Load_BigQuerySettings_DefaultToGoogleAndTakeALocation()
    {
        var defaults = Load(SafeProduction());
        (defaults.BigQueryBaseUrl.AbsoluteUri, defaults.BigQueryLocation).ShouldBe(("https://bigquery.googleapis.com/bigquery/v2", null));

        var values = SafeProduction();
        values["BIGQUERY_BASE_URL"] = "https://bigquery.europe-west1.rep.googleapis.com/bigquery/v2";
        values["BIGQUERY_LOCATION"] = "europe-west1";
        var configured = Load(values);
        (configured.BigQueryBaseUrl.AbsoluteUri, configured.BigQueryLocation).ShouldBe(("https://bigquery.europe-west1.rep.googleapis.com/bigquery/v2", "europe-west1"));
    }

    [Fact]
    public void Load_DevelopmentWithTheSameSettings_IsAllowed()
    {
        var settings = Load(new Dictionary<string, string?>
        {
            ["ENVIRONMENT"] = "development",
            ["DISABLE_AUTH"] = "true",
            ["RATE_LIMIT_ENABLED"] = "false",
            ["CORS_ORIGINS"] = "*",
        });

        settings.DisableAuth.ShouldBeTrue();
        settings.RootApiKey.ShouldBeNull();
    }

    [Theory]
    [InlineData("prod")]
    [InlineData("qa")]
    public void Load_UnknownEnvironment_IsRefusedAndValidatedAsProduction(string environment)
    {
        var ex = Should.Throw<InvalidSettingsException>(() => Load(new Dictionary<string, string?> { ["ENVIRONMENT"] = environment, ["DISABLE_AUTH"] = "true" }));

        ex.Message.ShouldContain("ENVIRONMENT");
        ex.Message.ShouldContain("DISABLE_AUTH", Case.Sensitive, "an unknown environment is validated as strictly as production");
    }

    [Theory]
    [InlineData("RATE_LIMIT_REQUESTS_PER_MINUTE", "0")]
    [InlineData("RATE_LIMIT_REQUESTS_PER_HOUR", "many")]
    [InlineData("DISABLE_AUTH", "yes")]
    [InlineData("CONVERGENCE_MAX_REQUEST_BODY_BYTES", "100")]
    [InlineData("CORS_ORIGINS", "https://app.example.com/path")]
    [InlineData("CONVERGENCE_STORE", "bigquery")]
    [InlineData("CONVERGENCE_KMS", "gcp")]
    [InlineData("BIGQUERY_BASE_URL", "bigquery.googleapis.com")]
    [InlineData("BIGQUERY_LOCATION", "EU; DROP")]
    [InlineData("BIGQUERY_LOCATION", "E")]
    public void Load_InvalidValue_ThrowsNamingTheSetting(string key, string value)
    {
        var values = SafeProduction();
        values[key] = value;

        var ex = Should.Throw<InvalidSettingsException>(() => Load(values));

        ex.Message.ShouldContain(key);
    }
}
