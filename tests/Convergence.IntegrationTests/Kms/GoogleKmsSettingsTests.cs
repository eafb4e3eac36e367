using Convergence.Api.Configuration;
using Convergence.Api.Extensions;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.IntegrationTests.Support;
using Convergence.Kms.Google;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Convergence.IntegrationTests.Kms;

/// <summary>CONVERGENCE_KMS=gcp: what it needs, what it refuses, and that it registers the Cloud KMS client.</summary>
public sealed class GoogleKmsSettingsTests : IAsyncLifetime
{
    private const string KeyName = "projects/p1/locations/global/keyRings/ring/cryptoKeys/secrets";

    private readonly string _directory = Directory.CreateTempSubdirectory("convergence-gkms-").FullName;
    private FakeGoogleKms _fake = null!;

    public async Task InitializeAsync() => _fake = await FakeGoogleKms.StartAsync();

    public async Task DisposeAsync()
    {
        await _fake.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private string WriteCredentials(string json)
    {
        var path = Path.Combine(_directory, $"sa-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private Dictionary<string, string?> Gcp() => new()
    {
        ["CONVERGENCE_DATA_DIR"] = _directory,
        ["CONVERGENCE_KMS"] = "gcp",
        ["KMS_KEY_NAME"] = KeyName,
        ["GOOGLE_APPLICATION_CREDENTIALS"] = WriteCredentials(_fake.ServiceAccountJson()),
    };

    private static ConvergenceSettings Load(Dictionary<string, string?> values) =>
        ConvergenceSettings.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Gcp_loads_with_google_defaults()
    {
        var settings = Load(Gcp());

        settings.Kms.ShouldBe("gcp");
        settings.KmsKeyName.ShouldBe(KeyName);
        settings.KmsBaseUrl.ShouldBe(new Uri("https://cloudkms.googleapis.com"));
        settings.KmsTokenUrl.ShouldBe(new Uri("https://oauth2.googleapis.com/token"));
        settings.KmsTimeout.ShouldBe(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void The_key_name_can_be_built_from_its_parts()
    {
        var values = Gcp();
        values.Remove("KMS_KEY_NAME");
        values["KMS_PROJECT_ID"] = "p1";
        values["KMS_LOCATION"] = "global";
        values["KMS_KEYRING"] = "ring";
        values["KMS_KEY"] = "secrets";

        Load(values).KmsKeyName.ShouldBe(KeyName);
    }

    [Fact]
    public void A_missing_key_name_is_refused_naming_the_settings()
    {
        var values = Gcp();
        values.Remove("KMS_KEY_NAME");
        values["KMS_PROJECT_ID"] = "p1";

        var ex = Should.Throw<InvalidSettingsException>(() => Load(values));
        ex.Message.ShouldContain("KMS_KEY_NAME");
        ex.Message.ShouldContain("missing: KMS_LOCATION, KMS_KEYRING, KMS_KEY");
    }

    [Theory]
    [InlineData("KMS_KEY_NAME", "projects/p1/locations/global/keyRings/ring")]
    [InlineData("KMS_BASE_URL", "cloudkms.googleapis.com")]
    [InlineData("KMS_TOKEN_URL", "file:///etc/passwd")]
    [InlineData("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json")]
    public void An_invalid_value_is_refused_naming_the_setting(string name, string value)
    {
        var values = Gcp();
        values[name] = value;

        Should.Throw<InvalidSettingsException>(() => Load(values)).Problems.ShouldContain(p => p.StartsWith(name, StringComparison.Ordinal));
    }

    [Fact]
    public void Missing_credentials_are_refused()
    {
        var values = Gcp();
        values.Remove("GOOGLE_APPLICATION_CREDENTIALS");

        Should.Throw<InvalidSettingsException>(() => Load(values)).Message.ShouldContain("GOOGLE_APPLICATION_CREDENTIALS");
    }

    [Theory]
    [InlineData("external_account")]
    [InlineData("authorized_user")]
    [InlineData("impersonated_service_account")]
    public void Credentials_that_are_not_a_service_account_are_refused(string type)
    {
        var values = Gcp();
        values["GOOGLE_APPLICATION_CREDENTIALS"] = WriteCredentials(_fake.ServiceAccountJson(type: type));

        var problem = Should.Throw<InvalidSettingsException>(() => Load(values)).Problems.ShouldHaveSingleItem();
        problem.ShouldStartWith("GOOGLE_APPLICATION_CREDENTIALS");
        problem.ShouldContain(type);
        problem.ShouldNotContain("PRIVATE KEY");
    }

    [Fact]
    public void Production_accepts_gcp_without_the_local_opt_in()
    {
        var values = Gcp();
        values["ENVIRONMENT"] = "production";
        values["CA_ROOT_API_KEY"] = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

        Load(values).Kms.ShouldBe("gcp");
    }

    [Fact]
    public async Task Gcp_registers_the_cloud_kms_client()
    {
        var values = Gcp();
        values["KMS_KEY_NAME"] = _fake.KeyName;
        values["KMS_BASE_URL"] = _fake.BaseUrl.AbsoluteUri;
        values["KMS_TOKEN_URL"] = _fake.TokenUrl.AbsoluteUri;
        var services = new ServiceCollection().AddLogging();
        services.AddConvergenceCore(Load(values));
        await using var provider = services.BuildServiceProvider();

        var kms = provider.GetRequiredService<IKeyManagementService>();
        kms.ShouldBeOfType<GoogleCloudKms>().Kind.ShouldBe("gcp");
        var context = KmsContext.ForOrgApiKey(OrgSlug.From("acme"), "k1");
        var ciphertext = await kms.EncryptAsync("secret"u8.ToArray(), context, default);
        (await kms.DecryptAsync(ciphertext, context, default)).ShouldBe("secret"u8.ToArray());
    }
}
