namespace KimiSharp.Client;

/// <summary>How the thinking switch is spelled in a request; servers ignore the spelling they do not know.</summary>
[Flags]
public enum ThinkingStyle
{
    /// <summary>Send no switch even when <see cref="OpenAICompatibleClientOptions.Thinking"/> is set.</summary>
    None = 0,

    /// <summary>Moonshot's platform: <c>"thinking": {"type": "enabled" | "disabled"}</c>.</summary>
    Moonshot = 1,

    /// <summary>vLLM, SGLang and llama.cpp: <c>"chat_template_kwargs": {"thinking": true | false}</c>.</summary>
    ChatTemplateKwargs = 2,
}

/// <summary>Where an <see cref="OpenAICompatibleChatClient"/> sends its requests, and how it retries them.</summary>
public sealed record OpenAICompatibleClientOptions
{
    /// <summary>The API root, e.g. <c>https://api.moonshot.ai/v1</c>; requests go to <c>{BaseUrl}/chat/completions</c>.</summary>
    public required string BaseUrl { get; init; }

    /// <summary>Sent as <c>Authorization: Bearer …</c>; null sends no header (a local server without a key).</summary>
    public string? ApiKey { get; init; }

    /// <summary>The model name; <c>ChatOptions.ModelId</c> overrides it per call.</summary>
    public required string Model { get; init; }

    /// <summary>
    /// Turns the model's thinking on or off; null sends no switch and leaves the server's default.
    /// Per call, <c>ChatOptions.AdditionalProperties["thinking"]</c> (a bool) overrides it, and so does
    /// <c>ChatOptions.Reasoning.Effort</c> (<c>None</c> = off, any other effort = on) when that property is absent.
    /// </summary>
    public bool? Thinking { get; init; }

    /// <summary>Which spellings of the thinking switch are sent. Both by default, since each server ignores the other's.</summary>
    public ThinkingStyle ThinkingStyle { get; init; } = ThinkingStyle.Moonshot | ThinkingStyle.ChatTemplateKwargs;

    /// <summary>Retries after the first attempt on 408, 429, 5xx, timeouts and connection failures.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>The first retry's delay; each later one doubles it (with jitter) up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between attempts, a server's <c>Retry-After</c> included.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long one attempt may wait for the response headers, and then for each next piece of the stream. It bounds
    /// silence, not the whole answer, so a long generation that keeps streaming is never cut off.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The environment variables <see cref="FromEnvironment()"/> reads.</summary>
    public const string BaseUrlVariable = "KIMI_BASE_URL", ApiKeyVariable = "KIMI_API_KEY", ModelVariable = "KIMI_MODEL_NAME";

    /// <summary>
    /// Options from <c>$KIMI_BASE_URL</c> and <c>$KIMI_MODEL_NAME</c> (both required) and <c>$KIMI_API_KEY</c>
    /// (optional: a local server may have none).
    /// </summary>
    /// <exception cref="InvalidOperationException">A required variable is unset or empty; the message names it.</exception>
    public static OpenAICompatibleClientOptions FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    internal static OpenAICompatibleClientOptions FromEnvironment(Func<string, string?> variable)
    {
        string Required(string name, string example) => variable(name) is { Length: > 0 } value ? value
            : throw new InvalidOperationException($"the environment variable {name} is not set (e.g. {name}={example})");
        return new OpenAICompatibleClientOptions
        {
            BaseUrl = Required(BaseUrlVariable, "https://api.moonshot.ai/v1"),
            Model = Required(ModelVariable, "kimi-k2-thinking"),
            ApiKey = variable(ApiKeyVariable) is { Length: > 0 } key ? key : null,
        };
    }
}
