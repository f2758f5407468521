namespace JobCore.Qmp;

/// <summary>The version a QMP server reports in its greeting and in <c>query-version</c>.</summary>
/// <param name="Major">Major version in the <c>qemu</c> member; clients compare it with QEMU versions.</param>
/// <param name="Minor">Minor version.</param>
/// <param name="Micro">Micro version.</param>
/// <param name="Package">Free text naming the implementation, e.g. <c>JobCore 0.1.0</c>.</param>
public sealed record QmpVersion(int Major, int Minor, int Micro, string Package)
{
    /// <summary>
    /// JobCore's answer: the shape of QEMU's version object with the QEMU release whose job behaviour it matches
    /// (7.2, so clients that gate features on <c>version.qemu.major</c> keep working) and JobCore in <c>package</c>.
    /// </summary>
    public static QmpVersion JobCore { get; } = new(7, 2, 0, "JobCore " + typeof(QmpVersion).Assembly.GetName().Version?.ToString(3));
}

/// <summary>Settings of a <see cref="QmpServer"/>.</summary>
public sealed class QmpServerOptions
{
    /// <summary>Where to listen; may be empty (clients can still be served over any stream).</summary>
    public IList<QmpEndpoint> Endpoints { get; } = [];

    /// <summary>Protocol limits (message size, nesting, outgoing queue).</summary>
    public QmpLimits Limits { get; set; } = new();

    /// <summary>The version in the greeting and in <c>query-version</c>.</summary>
    public QmpVersion Version { get; set; } = QmpVersion.JobCore;

    /// <summary>How long shutdown waits for queued replies and events to reach each client.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
