using Convergence.Api.Http;
using Convergence.Core.Errors;
using Convergence.Core.Kms;
using Convergence.Core.Organizations;
using Convergence.Core.Storage;

namespace Convergence.IntegrationTests.Http;

/// <summary>Dependency failures answer 503 with their reason; only unexpected errors are 500.</summary>
public sealed class ExceptionMappingTests
{
    public static TheoryData<Exception, int> Cases() => new()
    {
        { new KmsAccessDeniedException("Cloud KMS refused key k (403 PERMISSION_DENIED)."), 503 },
        { new KmsProtocolException("Cloud KMS answered malformed JSON."), 503 },
        { new TransientException("provider answered 502"), 503 },
        { new DependencyUnavailableException("Run queue", "full"), 503 },
        { new InvalidOperationException("bug"), 500 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Map_DependencyFailures_Are503WithTheirMessage(Exception exception, int status)
    {
        var (mapped, _, detail, _) = ConvergenceExceptionHandler.Map(exception);

        mapped.ShouldBe(status);
        if (status == 503)
        {
            detail.ShouldBe(exception.Message);
        }
        else
        {
            detail.ShouldNotContain("bug", Case.Sensitive, "unexpected errors keep their details in the log");
        }
    }

    [Fact]
    public void Map_TableSchemaConflict_Is500NamingTheTableAndTheFix()
    {
        var dataset = DatasetRef.ForOrg(OrgSlug.From("acme"), DeploymentEnvironment.Development);
        var exception = new TableSchemaConflictException(dataset, "usage", [new TableSchemaConflict("requests", "INT64 NULLABLE", "TEXT NULL", "a type change")]);

        var (status, title, detail, extensions) = ConvergenceExceptionHandler.Map(exception);

        (status, title).ShouldBe((500, "Warehouse table differs from its schema"));
        detail.ShouldBe(exception.Message);
        detail.ShouldContain("acme_local.usage");
        detail.ShouldContain("Migrate the table by hand");
        extensions.ShouldNotBeNull()["table"].ShouldBe("usage");
    }
}
