namespace JobCore.Qmp;

/// <summary>Constants of the QMP wire protocol.</summary>
public static class QmpProtocol
{
    /// <summary>The capability-negotiation command every session starts with.</summary>
    public const string CapabilitiesCommand = "qmp_capabilities";

    /// <summary>The <see cref="System.Diagnostics.ActivitySource"/> name of QMP command spans.</summary>
    public const string ActivitySourceName = "JobCore.Qmp";

    /// <summary>The event sent when the server begins to shut down.</summary>
    public const string ShutdownEvent = "SHUTDOWN";
}
