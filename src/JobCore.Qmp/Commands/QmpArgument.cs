namespace JobCore.Qmp;

/// <summary>One member of a command's argument object.</summary>
/// <param name="Name">The member name as it appears on the wire (e.g. <c>device</c>, <c>auto-finalize</c>).</param>
/// <param name="Type">Its type.</param>
/// <param name="Optional">Whether it may be absent (QAPI's <c>*name</c>).</param>
public sealed record QmpArgument(string Name, QmpType Type, bool Optional = false)
{
    /// <summary>A mandatory member.</summary>
    public static QmpArgument Required(string name, QmpType type) => new(name, type);

    /// <summary>An optional member.</summary>
    public static QmpArgument Opt(string name, QmpType type) => new(name, type, Optional: true);
}
