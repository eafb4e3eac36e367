using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Convergence.IntegrationTests.Support;

namespace Convergence.IntegrationTests.Scheduling;

/// <summary>
/// The schedules API over <c>org_pipeline_configs</c>: CRUD, next_run_time from the fake clock, validation, tenant
/// isolation, root access, the per-org cap and audit rows. The fake clock starts Thu 14 Mar 2030 12:00Z, when Berlin
/// is on CET (+01:00); Berlin springs forward Sun 31 Mar 2030 02:00→03:00 CET→CEST (01:00Z).
/// </summary>
public sealed class SchedulesApiTests : IAsyncLifetime, IDisposable
{
    private readonly ConvergenceApiFactory _factory = new();

    public async Task InitializeAsync() => await _factory.BootstrapAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Crud_RoundTrip_StoresReadsReplacesAndDeletes()
    {
        var org = await _factory.OnboardAsync("sched_crud");
        using var client = _factory.OrgClient(org.ApiKey);

        string id;
        using (var created = await client.PostJsonAsync(Url(org.Slug), new
        {
            pipeline = "gcp/billing",
            cron_schedule = "30 2 * * *",
            timezone = "Europe/Berlin",
            parameters = new Dictionary<string, string> { ["source_uri"] = "gs://bucket/export.csv" },
        }))
        {
            var body = await created.ShouldBeJsonAsync(HttpStatusCode.Created);
            id = body.Str("config_id");
            created.Headers.Location!.ToString().ShouldBe($"/api/v1/schedules/{org.Slug}/{id}");
            body.Str("org_slug").ShouldBe(org.Slug);
            body.Str("pipeline").ShouldBe("gcp/billing");
            body.Str("cron_schedule").ShouldBe("30 2 * * *");
            body.Str("timezone").ShouldBe("Europe/Berlin");
            body.GetProperty("parameters").GetProperty("source_uri").GetString().ShouldBe("gs://bucket/export.csv");
            body.GetProperty("is_active").GetBoolean().ShouldBeTrue("is_active defaults to true");
            Time(body, "next_run_time").ShouldBe(At("2030-03-15T01:30:00Z"), "02:30 CET the next day");
            body.GetProperty("last_run_time").ValueKind.ShouldBe(JsonValueKind.Null);
            Time(body, "created_at").ShouldBe(FakeTimeProvider.DefaultStart);
        }

        // The row is stored in the formats the scheduler's trigger queries (UTC text, 0/1, JSON object).
        var row = _factory.ControlPlane().Rows("SELECT * FROM org_pipeline_configs WHERE config_id = $id", ("$id", id)).ShouldHaveSingleItem();
        row["org_slug"].ShouldBe(org.Slug);
        row["next_run_time"].ShouldBe("2030-03-15T01:30:00.0000000Z");
        row["is_active"].ShouldBe(1L);
        row["parameters"].ShouldBeJson("""{"source_uri":"gs://bucket/export.csv"}""");

        using (var get = await client.GetAsync($"{Url(org.Slug)}/{id}"))
        {
            var body = await get.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.Str("config_id").ShouldBe(id);
            body.Str("cron_schedule").ShouldBe("30 2 * * *");
        }

        _factory.Clock.Advance(TimeSpan.FromHours(1));
        using (var put = await client.PutAsJsonAsync($"{Url(org.Slug)}/{id}", new { pipeline = "openai/usage_cost", cron_schedule = "0 6 * * 1", timezone = "America/New_York" }, ConvergenceApiFactory.Json))
        {
            var body = await put.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.Str("pipeline").ShouldBe("openai/usage_cost");
            body.Str("cron_schedule").ShouldBe("0 6 * * 1");
            body.Str("timezone").ShouldBe("America/New_York");
            body.GetProperty("parameters").EnumerateObject().ShouldBeEmpty("PUT replaces every field, parameters too");
            Time(body, "next_run_time").ShouldBe(At("2030-03-18T10:00:00Z"), "Monday 06:00 EDT (New York sprang forward on 10 Mar 2030)");
            Time(body, "created_at").ShouldBe(FakeTimeProvider.DefaultStart);
            Time(body, "updated_at").ShouldBe(FakeTimeProvider.DefaultStart.AddHours(1));
        }

        using (var list = await client.GetAsync(Url(org.Slug)))
        {
            var body = await list.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.GetProperty("schedules").EnumerateArray().ShouldHaveSingleItem().Str("pipeline").ShouldBe("openai/usage_cost");
        }

        using (var delete = await client.DeleteAsync($"{Url(org.Slug)}/{id}"))
        {
            (await delete.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("deleted").GetBoolean().ShouldBeTrue();
        }

        using (var gone = await client.GetAsync($"{Url(org.Slug)}/{id}"))
        {
            await gone.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using (var again = await client.DeleteAsync($"{Url(org.Slug)}/{id}"))
        {
            await again.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using (var putGone = await client.PutAsJsonAsync($"{Url(org.Slug)}/{id}", ValidBody(), ConvergenceApiFactory.Json))
        {
            await putGone.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        var actions = _factory.ControlPlane().Rows(
            "SELECT action, actor_type FROM org_audit_logs WHERE org_slug = $org AND action LIKE 'schedule.%' ORDER BY occurred_at", ("$org", org.Slug));
        actions.Select(a => (string)a["action"]!).ShouldBe(["schedule.create", "schedule.update", "schedule.delete"]);
        actions.ShouldAllBe(a => (string)a["actor_type"]! == "ORG_KEY");
    }

    [Fact]
    public async Task Create_BerlinBeforeTheSpringForward_NextRunIsTheFirstInstantAfterTheGap()
    {
        var org = await _factory.OnboardAsync("sched_dst");
        using var client = _factory.OrgClient(org.ApiKey);
        _factory.Clock.Advance(At("2030-03-30T12:00:00Z") - FakeTimeProvider.DefaultStart);

        using var created = await client.PostJsonAsync(Url(org.Slug), ValidBody(cron: "30 2 * * *"));

        var body = await created.ShouldBeJsonAsync(HttpStatusCode.Created);
        Time(body, "next_run_time").ShouldBe(At("2030-03-31T01:00:00Z"), "02:30 does not exist on 31 Mar in Berlin: 03:00 CEST");
    }

    [Fact]
    public async Task Replace_Deactivate_ClearsNextRunTimeAndReactivateSetsIt()
    {
        var org = await _factory.OnboardAsync("sched_toggle");
        using var client = _factory.OrgClient(org.ApiKey);
        var id = await CreateAsync(client, org.Slug);

        using (var off = await client.PutAsJsonAsync($"{Url(org.Slug)}/{id}", ValidBody(active: false), ConvergenceApiFactory.Json))
        {
            var body = await off.ShouldBeJsonAsync(HttpStatusCode.OK);
            body.GetProperty("is_active").GetBoolean().ShouldBeFalse();
            body.GetProperty("next_run_time").ValueKind.ShouldBe(JsonValueKind.Null);
        }

        var row = _factory.ControlPlane().Rows("SELECT is_active, next_run_time FROM org_pipeline_configs WHERE config_id = $id", ("$id", id)).ShouldHaveSingleItem();
        row["is_active"].ShouldBe(0L);
        row["next_run_time"].ShouldBeNull("an inactive schedule is never due");
        using (var get = await client.GetAsync($"{Url(org.Slug)}/{id}"))
        {
            (await get.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("next_run_time").ValueKind.ShouldBe(JsonValueKind.Null);
        }

        using var on = await client.PutAsJsonAsync($"{Url(org.Slug)}/{id}", ValidBody(active: true), ConvergenceApiFactory.Json);
        Time(await on.ShouldBeJsonAsync(HttpStatusCode.OK), "next_run_time").ShouldBe(At("2030-03-15T01:30:00Z"));
    }

    public static TheoryData<string, string> InvalidBodies() => new()
    {
        { "cron_schedule", """{"pipeline":"openai/usage_cost","cron_schedule":"0 2 * *","timezone":"Europe/Berlin"}""" },
        { "cron_schedule", """{"pipeline":"openai/usage_cost","cron_schedule":"0 0 2 * * *","timezone":"Europe/Berlin"}""" },
        { "cron_schedule", """{"pipeline":"openai/usage_cost","cron_schedule":"61 2 * * *","timezone":"Europe/Berlin"}""" },
        { "cron_schedule", """{"pipeline":"openai/usage_cost","cron_schedule":"0 0 30 2 *","timezone":"Europe/Berlin"}""" },
        { "cron_schedule", """{"pipeline":"openai/usage_cost","timezone":"Europe/Berlin"}""" },
        { "timezone", """{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"Europe/Atlantis"}""" },
        { "timezone", """{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *"}""" },
        { "pipeline", """{"pipeline":"openai/no_such_pipeline","cron_schedule":"30 2 * * *","timezone":"UTC"}""" },
        { "pipeline", """{"pipeline":"setup/bootstrap/pipeline","cron_schedule":"30 2 * * *","timezone":"UTC"}""" },
        { "pipeline", """{"pipeline":"../../etc/passwd","cron_schedule":"30 2 * * *","timezone":"UTC"}""" },
        { "pipeline", """{"cron_schedule":"30 2 * * *","timezone":"UTC"}""" },
        { "parameters.date", """{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC","parameters":{"date":"2030-01-01"}}""" },
        { "parameters.start_date", """{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC","parameters":{"start_date":"2030-01-01","end_date":"2030-01-02"}}""" },
        { "parameters.source_uri", """{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC","parameters":{"source_uri":"x"}}""" },
        { "parameters.x", """{"pipeline":"gcp/billing","cron_schedule":"30 2 * * *","timezone":"UTC","parameters":{"x":null}}""" },
    };

    [Theory]
    [MemberData(nameof(InvalidBodies))]
    public async Task Create_InvalidValue_Is422NamingTheFieldAndStoresNothing(string field, string json)
    {
        var org = await _factory.OnboardAsync("sched_invalid");
        using var client = _factory.OrgClient(org.ApiKey);

        using (var response = await client.PostRawAsync(Url(org.Slug), json))
        {
            var problem = await response.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").TryGetProperty(field, out _).ShouldBeTrue(problem.Text);
        }

        var id = await CreateAsync(client, org.Slug);
        using (var put = await client.PutAsync($"{Url(org.Slug)}/{id}", new StringContent(json, Encoding.UTF8, "application/json")))
        {
            var problem = await put.ShouldBeProblemAsync(HttpStatusCode.UnprocessableEntity);
            problem.Json.GetProperty("errors").TryGetProperty(field, out _).ShouldBeTrue(problem.Text);
        }

        _factory.ControlPlane().CountForOrg("org_pipeline_configs", org.Slug).ShouldBe(1, "only the valid schedule was stored");
        _factory.ControlPlane().Scalar("SELECT cron_schedule FROM org_pipeline_configs WHERE config_id = $id", ("$id", id)).ShouldBe("30 2 * * *", "a refused PUT changes nothing");
    }

    [Theory]
    [InlineData("""{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC",""")]
    [InlineData("""{"pipeline":"openai/usage_cost","cron_schedule":5,"timezone":"UTC"}""")]
    [InlineData("""{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC","is_active":"yes"}""")]
    [InlineData("""{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC","parameters":{"a":1}}""")]
    [InlineData("""{"pipeline":"openai/usage_cost","cron_schedule":"30 2 * * *","timezone":"UTC","parameters":["a"]}""")]
    [InlineData("""{"pipeline":"openai/usage_cost","cron":"30 2 * * *","timezone":"UTC"}""")]
    [InlineData("""[]""")]
    [InlineData("")]
    public async Task Create_MalformedBody_Is400NotA500(string json)
    {
        var org = await _factory.OnboardAsync("sched_malformed");
        using var client = _factory.OrgClient(org.ApiKey);

        using var response = await client.PostRawAsync(Url(org.Slug), json);

        await response.ShouldBeProblemAsync(HttpStatusCode.BadRequest);
        _factory.ControlPlane().CountForOrg("org_pipeline_configs", org.Slug).ShouldBe(0);
    }

    [Fact]
    public async Task OtherOrgsKey_Is403OnEveryRoute()
    {
        var mine = await _factory.OnboardAsync("sched_mine");
        var theirs = await _factory.OnboardAsync("sched_theirs");
        using var theirClient = _factory.OrgClient(theirs.ApiKey);
        var theirId = await CreateAsync(theirClient, theirs.Slug);
        using var client = _factory.OrgClient(mine.ApiKey);

        using (var list = await client.GetAsync(Url(theirs.Slug)))
        {
            await list.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using (var create = await client.PostJsonAsync(Url(theirs.Slug), ValidBody()))
        {
            await create.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using (var get = await client.GetAsync($"{Url(theirs.Slug)}/{theirId}"))
        {
            await get.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using (var put = await client.PutAsJsonAsync($"{Url(theirs.Slug)}/{theirId}", ValidBody(active: false), ConvergenceApiFactory.Json))
        {
            await put.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        using (var delete = await client.DeleteAsync($"{Url(theirs.Slug)}/{theirId}"))
        {
            await delete.ShouldBeProblemAsync(HttpStatusCode.Forbidden);
        }

        // Through its own route, the other org's id names nothing.
        using (var viaOwn = await client.GetAsync($"{Url(mine.Slug)}/{theirId}"))
        {
            await viaOwn.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using (var deleteViaOwn = await client.DeleteAsync($"{Url(mine.Slug)}/{theirId}"))
        {
            await deleteViaOwn.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        using (var putViaOwn = await client.PutAsJsonAsync($"{Url(mine.Slug)}/{theirId}", ValidBody(active: false), ConvergenceApiFactory.Json))
        {
            await putViaOwn.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        var row = _factory.ControlPlane().Rows("SELECT org_slug, is_active FROM org_pipeline_configs WHERE config_id = $id", ("$id", theirId)).ShouldHaveSingleItem();
        row["org_slug"].ShouldBe(theirs.Slug);
        row["is_active"].ShouldBe(1L, "nothing the other org's key sent changed the schedule");
        _factory.ControlPlane().CountForOrg("org_pipeline_configs", theirs.Slug).ShouldBe(1);
        _factory.ControlPlane().CountForOrg("org_pipeline_configs", mine.Slug).ShouldBe(0);
    }

    [Fact]
    public async Task List_ShowsOnlyTheOrgsOwnSchedules()
    {
        var a = await _factory.OnboardAsync("sched_list_a");
        var b = await _factory.OnboardAsync("sched_list_b");
        using var clientA = _factory.OrgClient(a.ApiKey);
        using var clientB = _factory.OrgClient(b.ApiKey);
        string[] idsA = [await CreateAsync(clientA, a.Slug), await CreateAsync(clientA, a.Slug)];
        var idB = await CreateAsync(clientB, b.Slug);

        using var list = await clientA.GetAsync(Url(a.Slug));

        var body = await list.ShouldBeJsonAsync(HttpStatusCode.OK);
        body.Str("org_slug").ShouldBe(a.Slug);
        var schedules = body.GetProperty("schedules").EnumerateArray().ToList();
        schedules.Select(s => s.Str("config_id")).ShouldBe(idsA, ignoreOrder: true);
        schedules.ShouldAllBe(s => s.GetProperty("org_slug").GetString() == a.Slug);
        schedules.Select(s => s.Str("config_id")).ShouldNotContain(idB);
    }

    [Fact]
    public async Task RootKey_ActsOnAnyOrg()
    {
        var org = await _factory.OnboardAsync("sched_root");
        using var root = _factory.RootClient();

        string id;
        using (var created = await root.PostJsonAsync(Url(org.Slug), ValidBody()))
        {
            id = (await created.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("config_id");
        }

        using (var list = await root.GetAsync(Url(org.Slug)))
        {
            (await list.ShouldBeJsonAsync(HttpStatusCode.OK)).GetProperty("schedules").EnumerateArray().ShouldHaveSingleItem().Str("config_id").ShouldBe(id);
        }

        using (var get = await root.GetAsync($"{Url(org.Slug)}/{id}"))
        {
            await get.ShouldBeJsonAsync(HttpStatusCode.OK);
        }

        using (var put = await root.PutAsJsonAsync($"{Url(org.Slug)}/{id}", ValidBody(cron: "0 3 * * *"), ConvergenceApiFactory.Json))
        {
            (await put.ShouldBeJsonAsync(HttpStatusCode.OK)).Str("cron_schedule").ShouldBe("0 3 * * *");
        }

        using (var delete = await root.DeleteAsync($"{Url(org.Slug)}/{id}"))
        {
            await delete.ShouldBeJsonAsync(HttpStatusCode.OK);
        }

        using (var unknownOrg = await root.GetAsync(Url("no_such_org")))
        {
            await unknownOrg.ShouldBeProblemAsync(HttpStatusCode.NotFound);
        }

        _factory.ControlPlane().Count("org_audit_logs", "org_slug = $org AND action LIKE 'schedule.%' AND actor_type = 'ROOT'", ("$org", org.Slug)).ShouldBe(3);
    }

    [Fact]
    public async Task Create_BeyondTheCap_Is409AndStoresNothing()
    {
        var org = await _factory.OnboardAsync("sched_cap");
        using var client = _factory.OrgClient(org.ApiKey);
        for (var i = 0; i < 100; i++)
        {
            using var created = await client.PostJsonAsync(Url(org.Slug), ValidBody(cron: $"{i % 60} {i / 60} * * *"));
            created.StatusCode.ShouldBe(HttpStatusCode.Created);
        }

        using var extra = await client.PostJsonAsync(Url(org.Slug), ValidBody());

        var problem = await extra.ShouldBeProblemAsync(HttpStatusCode.Conflict);
        problem.Json.Str("detail").ShouldContain("100");
        _factory.ControlPlane().CountForOrg("org_pipeline_configs", org.Slug).ShouldBe(100);
    }

    private static string Url(string slug) => $"/api/v1/schedules/{slug}";

    private static object ValidBody(string cron = "30 2 * * *", bool active = true) =>
        new { pipeline = "openai/usage_cost", cron_schedule = cron, timezone = "Europe/Berlin", is_active = active };

    private static async Task<string> CreateAsync(HttpClient client, string slug)
    {
        using var created = await client.PostJsonAsync(Url(slug), ValidBody());
        return (await created.ShouldBeJsonAsync(HttpStatusCode.Created)).Str("config_id");
    }

    private static DateTimeOffset Time(JsonElement body, string property) => body.GetProperty(property).GetDateTimeOffset();

    private static DateTimeOffset At(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);
}
