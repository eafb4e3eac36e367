using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Convergence.IntegrationTests.Support;

/// <summary>A response body read once: its text and, when it is JSON, the parsed document.</summary>
public sealed record ResponseBody(HttpStatusCode Status, string? MediaType, string Text, JsonElement Json);

public static class HttpAssertions
{
    public static async Task<ResponseBody> ReadBodyAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        JsonElement json = default;
        if (text.Length > 0 && text.TrimStart() is ['{' or '[', ..])
        {
            try
            {
                json = JsonDocument.Parse(text).RootElement.Clone();
            }
            catch (JsonException)
            {
            }
        }

        return new ResponseBody(response.StatusCode, response.Content.Headers.ContentType?.MediaType, text, json);
    }

    /// <summary>Asserts the status and returns the JSON body.</summary>
    public static async Task<JsonElement> ShouldBeJsonAsync(this HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.ReadBodyAsync();
        ((int)response.StatusCode).ShouldBe((int)status, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {body.Text}");
        body.Json.ValueKind.ShouldBe(JsonValueKind.Object, body.Text);
        return body.Json;
    }

    /// <summary>Asserts an RFC 9457 problem: status code, <c>application/problem+json</c>, and <c>status</c>/<c>detail</c> members.</summary>
    public static async Task<ResponseBody> ShouldBeProblemAsync(this HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.ReadBodyAsync();
        ((int)response.StatusCode).ShouldBe((int)status, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {body.Text}");
        body.MediaType.ShouldBe("application/problem+json", body.Text);
        body.Json.ValueKind.ShouldBe(JsonValueKind.Object, body.Text);
        body.Json.GetProperty("status").GetInt32().ShouldBe((int)status, body.Text);
        body.Json.TryGetProperty("detail", out var detail).ShouldBeTrue(body.Text);
        detail.GetString().ShouldNotBeNullOrWhiteSpace(body.Text);
        return body;
    }

    /// <summary>Asserts a 5xx problem that leaks nothing about the exception.</summary>
    public static async Task<ResponseBody> ShouldBeServerErrorProblemAsync(this HttpResponseMessage response)
    {
        var body = await response.ReadBodyAsync();
        ((int)response.StatusCode).ShouldBeInRange(500, 599, body.Text);
        body.MediaType.ShouldBe("application/problem+json", body.Text);
        body.Json.GetProperty("status").GetInt32().ShouldBe((int)response.StatusCode);
        body.Json.GetProperty("detail").GetString().ShouldNotBeNullOrWhiteSpace();
        return body;
    }

    /// <summary>
    /// Asserts that stored JSON text means the same as <paramref name="expected"/>: PostgreSQL's <c>jsonb</c> gives objects
    /// back with its own spacing and key order, SQLite the text as written, and neither difference changes the meaning.
    /// </summary>
    public static void ShouldBeJson(this object? actual, string expected)
    {
        actual.ShouldBeOfType<string>();
        System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse((string)actual), System.Text.Json.Nodes.JsonNode.Parse(expected))
            .ShouldBeTrue($"{actual} should mean the same JSON as {expected}");
    }

    public static string Str(this JsonElement element, string property) =>
        element.GetProperty(property).GetString() ?? throw new InvalidOperationException($"'{property}' is null.");

    public static Task<HttpResponseMessage> PostJsonAsync(this HttpClient client, string url, object body) =>
        client.PostAsJsonAsync(url, body, ConvergenceApiFactory.Json);

    public static Task<HttpResponseMessage> PatchJsonAsync(this HttpClient client, string url, object body) =>
        client.PatchAsJsonAsync(url, body, ConvergenceApiFactory.Json);

    public static Task<HttpResponseMessage> PostRawAsync(this HttpClient client, string url, string body, string? mediaType = "application/json")
    {
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = mediaType is null ? null : new System.Net.Http.Headers.MediaTypeHeaderValue(mediaType) { CharSet = "utf-8" };
        return client.PostAsync(url, content);
    }

    /// <summary>Sends a request with extra headers (added without validation, so tests can send odd values).</summary>
    public static Task<HttpResponseMessage> SendAsync(this HttpClient client, HttpMethod method, string url, IReadOnlyDictionary<string, string>? headers = null, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, url) { Content = content };
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value).ShouldBeTrue($"header {name}");
        }

        return client.SendAsync(request);
    }

    public static string Sha256Hex(string text) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
