using System.Text.Json;

namespace JobCore.Block.Options;

/// <summary>
/// The typed, validated form of one QEMU <c>blockdev-add</c> argument object (QAPI <c>BlockdevOptions</c>) for
/// the drivers JobCore implements: <c>file</c>, <c>raw</c>, <c>qcow2</c> and <c>blkdebug</c>.
/// Parse JSON with <see cref="Parse(JsonElement)"/>; open the node with <c>BlockGraph.AddAsync</c>.
/// </summary>
public abstract record BlockdevOptions
{
    /// <summary>The driver name as QEMU spells it.</summary>
    public abstract string Driver { get; }

    /// <summary>The node name, or <see langword="null"/> for an implicit child (the graph then generates <c>#blockNNN</c>).</summary>
    public string? NodeName { get; init; }

    /// <summary>Whether the node is opened read-only (children given inline inherit it).</summary>
    public bool ReadOnly { get; init; }

    /// <summary>QEMU's <c>detect-zeroes</c> (<c>off</c>, <c>on</c>, <c>unmap</c>; unmap needs <c>discard: unmap</c>).</summary>
    public Nodes.DetectZeroes DetectZeroes { get; init; }

    /// <summary>
    /// Parses QEMU's JSON shape. Errors use QEMU's texts: <c>Parameter 'driver' is missing</c>,
    /// <c>Invalid parameter type for 'file.filename', expected: string</c>, <c>Parameter 'x' is unexpected</c>,
    /// <c>Parameter 'driver' does not accept value 'foo'</c>.
    /// </summary>
    /// <param name="json">The argument object of <c>blockdev-add</c>.</param>
    /// <exception cref="Graph.BlockGraphException">The object does not describe a valid node.</exception>
    public static BlockdevOptions Parse(JsonElement json) => BlockdevOptionsParser.Parse(json, string.Empty);

    /// <summary>Parses QEMU's JSON shape from text (see <see cref="Parse(JsonElement)"/>).</summary>
    /// <param name="json">The argument object of <c>blockdev-add</c> as JSON text.</param>
    public static BlockdevOptions Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return Parse(document.RootElement);
    }
}

/// <summary>Driver <c>file</c>: a host file.</summary>
/// <param name="Filename">The host path.</param>
public sealed record FileBlockdevOptions(string Filename) : BlockdevOptions
{
    /// <inheritdoc />
    public override string Driver => "file";
}

/// <summary>Driver <c>raw</c>: the guest sees the bytes of <paramref name="File"/> unchanged.</summary>
/// <param name="File">The protocol child.</param>
public sealed record RawBlockdevOptions(BlockdevRef File) : BlockdevOptions
{
    /// <inheritdoc />
    public override string Driver => "raw";
}

/// <summary>How a qcow2 node gets its backing node.</summary>
public enum BackingMode
{
    /// <summary><c>backing</c> absent: open the chain named in the image header.</summary>
    FromHeader,

    /// <summary><c>"backing": null</c>: no backing node, even if the header names one.</summary>
    None,

    /// <summary><c>backing</c> given as a node name or an inline definition.</summary>
    Given,
}

/// <summary>Driver <c>qcow2</c>.</summary>
/// <param name="File">The protocol child holding the image.</param>
public sealed record Qcow2BlockdevOptions(BlockdevRef File) : BlockdevOptions
{
    /// <inheritdoc />
    public override string Driver => "qcow2";

    /// <summary>Where the backing node comes from.</summary>
    public BackingMode BackingMode { get; init; } = BackingMode.FromHeader;

    /// <summary>The backing node when <see cref="BackingMode"/> is <see cref="BackingMode.Given"/>.</summary>
    public BlockdevRef? Backing { get; init; }
}

/// <summary>Driver <c>blkdebug</c>: a filter over <paramref name="Image"/> that injects errors.</summary>
/// <param name="Image">The filtered child.</param>
public sealed record BlkdebugBlockdevOptions(BlockdevRef Image) : BlockdevOptions
{
    /// <inheritdoc />
    public override string Driver => "blkdebug";

    /// <summary>The error-injection rules, in the order given.</summary>
    public IReadOnlyList<BlkdebugInjectErrorOptions> InjectError { get; init; } = [];
}

/// <summary>
/// A child given either by the node name of an existing node or by an inline definition (QAPI <c>BlockdevRef</c>).
/// Exactly one of <see cref="Reference"/> and <see cref="Definition"/> is set.
/// </summary>
public sealed record BlockdevRef
{
    private BlockdevRef(string? reference, BlockdevOptions? definition)
    {
        Reference = reference;
        Definition = definition;
    }

    /// <summary>The node name of an existing node.</summary>
    public string? Reference { get; }

    /// <summary>The options of a node to open with its parent.</summary>
    public BlockdevOptions? Definition { get; }

    /// <summary>A reference to an existing node.</summary>
    /// <param name="nodeName">Its node name.</param>
    public static BlockdevRef ToNode(string nodeName)
    {
        ArgumentNullException.ThrowIfNull(nodeName);
        return new BlockdevRef(nodeName, null);
    }

    /// <summary>An inline child definition.</summary>
    /// <param name="options">Its options.</param>
    public static BlockdevRef Inline(BlockdevOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new BlockdevRef(null, options);
    }
}

/// <summary>The blkdebug events JobCore raises: QAPI <c>BlkdebugEvent</c> values <c>read_aio</c>, <c>write_aio</c>, <c>flush_to_disk</c>.</summary>
public enum BlkdebugEvent
{
    /// <summary><c>read_aio</c>: a data read.</summary>
    ReadAio,

    /// <summary><c>write_aio</c>: a data write (also write-zeroes).</summary>
    WriteAio,

    /// <summary><c>flush_to_disk</c>: a flush.</summary>
    FlushToDisk,
}

/// <summary>QAPI <c>BlkdebugIOType</c>: the kind of request a rule fails.</summary>
public enum BlkdebugIOType
{
    /// <summary><c>read</c>.</summary>
    Read,

    /// <summary><c>write</c>.</summary>
    Write,

    /// <summary><c>write-zeroes</c>.</summary>
    WriteZeroes,

    /// <summary><c>discard</c>.</summary>
    Discard,

    /// <summary><c>flush</c>.</summary>
    Flush,

    /// <summary><c>block-status</c>.</summary>
    BlockStatus,
}

/// <summary>One <c>inject-error</c> rule of blkdebug (QAPI <c>BlkdebugInjectErrorOptions</c>).</summary>
/// <param name="Event">The event that arms the rule.</param>
public sealed record BlkdebugInjectErrorOptions(BlkdebugEvent Event)
{
    /// <summary>The members the rule was given with (comma-separated QAPI names), for QEMU's json: node names.</summary>
    internal string Given { get; init; } = "event";

    /// <summary>Only requests of this kind fail; <see langword="null"/> = read, write, write-zeroes, discard and flush.</summary>
    public BlkdebugIOType? IOType { get; init; }

    /// <summary>The errno injected (default EIO = 5); 0 arms the rule without failing anything, as in QEMU.</summary>
    public int Errno { get; init; } = 5;

    /// <summary>Only requests covering this 512-byte sector fail; -1 (default) = any request (flushes only match -1).</summary>
    public long Sector { get; init; } = -1;

    /// <summary>The rule is removed after it fails one request.</summary>
    public bool Once { get; init; }

    /// <summary>The request fails before it is queued (synchronously) instead of completing with the error later.</summary>
    public bool Immediately { get; init; }

    /// <summary>The blkdebug state the rule is restricted to (0 = any; JobCore's state is always 1).</summary>
    public int State { get; init; }
}
