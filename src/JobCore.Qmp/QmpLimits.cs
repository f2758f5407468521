namespace JobCore.Qmp;

/// <summary>
/// Limits that protect the daemon from hostile or broken clients. The defaults are QEMU's
/// (<c>qobject/json-streamer.c</c>): 64 MiB per message, 2 Mi tokens, nesting depth 1024.
/// </summary>
public sealed record QmpLimits
{
    /// <summary>Largest message (sum of its token lengths) before it is refused with <c>JSON token size limit exceeded</c>.</summary>
    public int MaxMessageBytes { get; init; } = 64 << 20;

    /// <summary>Most tokens in one message before it is refused with <c>JSON token count limit exceeded</c>.</summary>
    public int MaxTokens { get; init; } = 2 << 20;

    /// <summary>Deepest nesting of objects and arrays before a message is refused with <c>JSON nesting depth limit exceeded</c>.</summary>
    public int MaxNesting { get; init; } = 1024;

    /// <summary>
    /// Replies and events waiting to be written to one client. A client that lets its queue fill up (it does not
    /// read) is disconnected, so it can never block jobs or other clients.
    /// </summary>
    public int OutgoingQueueCapacity { get; init; } = 10_000;
}
