using System.Numerics;

namespace JobCore.Block.Jobs;

/// <summary>What a mirror copies before it tracks new writes (QEMU's <c>MirrorSyncMode</c>).</summary>
public enum MirrorSyncMode
{
    /// <summary>Only what is allocated in the source's top image; the target's backing is the source's backing.</summary>
    Top,

    /// <summary>Everything the source shows; the target stands alone.</summary>
    Full,

    /// <summary>Nothing; only writes made after the start are copied; the target's backing is the source.</summary>
    None,

    /// <summary>Backup only; mirror refuses it.</summary>
    Incremental,

    /// <summary>Backup only; mirror refuses it.</summary>
    Bitmap,
}

/// <summary>How a mirror handles writes that arrive while it runs (QEMU's <c>MirrorCopyMode</c>).</summary>
public enum MirrorCopyMode
{
    /// <summary>Writes mark the dirty bitmap; the copy loop copies them later.</summary>
    Background,

    /// <summary>Writes are also written to the target before they complete, so the job converges under any load.</summary>
    WriteBlocking,
}

/// <summary>What happens to the target's backing node when the mirror succeeds.</summary>
public enum MirrorTargetBacking
{
    /// <summary><c>blockdev-mirror</c>: leave it exactly as the user configured it.</summary>
    Leave,

    /// <summary>
    /// <c>drive-mirror</c> with <c>mode=absolute-paths</c>: the target was created with the right backing file name
    /// but opened without a backing node; on success the graph gives it the source's backing (sync=top), the source
    /// itself (sync=none) or nothing (sync=full).
    /// </summary>
    SourceChain,

    /// <summary>
    /// <c>drive-mirror</c> with <c>mode=existing</c> (QEMU's <c>MIRROR_OPEN_BACKING_CHAIN</c>): the target was opened
    /// without a backing node; on success (complete, or a soft cancel after READY) the chain its header names is opened.
    /// </summary>
    OpenChain,
}

/// <summary>The options of a <c>mirror</c> job (<c>blockdev-mirror</c> / <c>drive-mirror</c>).</summary>
public sealed record MirrorJobOptions : JobOptions
{
    /// <summary>QEMU's <c>DEFAULT_MIRROR_BUF_SIZE</c>: 16 MiB (16 requests of 1 MiB in flight).</summary>
    public const long DefaultBufferSize = 16L << 20;

    /// <summary>The device or node name of the source (QMP <c>device</c>).</summary>
    public string Device { get; init; } = string.Empty;

    /// <summary>The node name of the target (QMP <c>target</c> of <c>blockdev-mirror</c>).</summary>
    public string Target { get; init; } = string.Empty;

    /// <summary>The node swapped out for the target on completion (QMP <c>replaces</c>); null = the source.</summary>
    public string? Replaces { get; init; }

    /// <summary>What to copy (QMP <c>sync</c>, mandatory there).</summary>
    public MirrorSyncMode Sync { get; init; } = MirrorSyncMode.Full;

    /// <summary>Dirty-bitmap granularity in bytes (QMP <c>granularity</c>): a power of two in [512 B, 64 MiB]; 0 = the
    /// target's cluster size clamped to [4 KiB, 64 KiB].</summary>
    public long Granularity { get; init; }

    /// <summary>Copy buffer in bytes (QMP <c>buf-size</c>); 0 = 16 MiB; rounded up to the granularity.</summary>
    public long BufferSize { get; init; }

    /// <summary>Policy for source read errors (QMP <c>on-source-error</c>, default <c>report</c>).</summary>
    public ErrorPolicy OnSourceError { get; init; } = ErrorPolicy.Report;

    /// <summary>Policy for target write and flush errors (QMP <c>on-target-error</c>, default <c>report</c>).</summary>
    public ErrorPolicy OnTargetError { get; init; } = ErrorPolicy.Report;

    /// <summary>The dirty-tracking filter's node name (QMP <c>filter-node-name</c>); null = implicit <c>#blockNNN</c>.</summary>
    public string? FilterNodeName { get; init; }

    /// <summary>How new writes are handled (QMP <c>copy-mode</c>, default <c>background</c>).</summary>
    public MirrorCopyMode CopyMode { get; init; } = MirrorCopyMode.Background;

    /// <summary>Whether zero ranges may be deallocated on the target (drive-mirror's <c>unmap</c>, default true).</summary>
    public bool Unmap { get; init; } = true;

    /// <summary>
    /// Whether the target is known to read as zeroes (a freshly created image, or QMP <c>target-is-zero</c>). When
    /// false and sync is <c>full</c>, data already on the target is zeroed first (not counted as progress).
    /// </summary>
    public bool TargetIsZero { get; init; }

    /// <summary>What happens to the target's backing on success (<see cref="MirrorTargetBacking.Leave"/> for blockdev-mirror).</summary>
    public MirrorTargetBacking TargetBacking { get; init; } = MirrorTargetBacking.Leave;

    /// <summary>
    /// Checks the argument values in QEMU's order: <c>Parameter 'granularity' expects a value in range [512B, 64MB]</c>,
    /// <c>Parameter 'granularity' expects a power of 2</c>, <c>Sync mode 'incremental' not supported</c>,
    /// <c>Invalid parameter 'buf-size'</c>; plus the generic ones (speed).
    /// </summary>
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrEmpty(Device))
        {
            throw new JobException("Parameter 'device' is missing");
        }

        if (string.IsNullOrEmpty(Target))
        {
            throw new JobException("Parameter 'target' is missing");
        }

        ValidateGranularity(Granularity);
        if (Sync is MirrorSyncMode.Incremental or MirrorSyncMode.Bitmap)
        {
            throw new JobException($"Sync mode '{Sync.WireName()}' not supported");
        }

        if (BufferSize < 0)
        {
            throw new JobException("Invalid parameter 'buf-size'");
        }
    }

    /// <summary>QEMU's granularity checks (0 = default).</summary>
    internal static void ValidateGranularity(long granularity)
    {
        if (granularity != 0 && (granularity < 512 || granularity > 64L << 20))
        {
            throw new JobException("Parameter 'granularity' expects a value in range [512B, 64MB]");
        }

        if (granularity != 0 && !BitOperations.IsPow2(granularity))
        {
            throw new JobException("Parameter 'granularity' expects a power of 2");
        }
    }
}

/// <summary>The mirror member of <c>block-job-change</c>: switch the copy mode of a running mirror.</summary>
/// <param name="CopyMode">The wanted mode; only <c>background</c> → <c>write-blocking</c> is implemented.</param>
public sealed record MirrorChangeOptions(MirrorCopyMode CopyMode);

/// <summary>Wire names of the mirror enums.</summary>
public static class MirrorWireNames
{
    /// <summary>The QAPI name of a sync mode (<c>top</c>, <c>full</c>, <c>none</c>, <c>incremental</c>, <c>bitmap</c>).</summary>
    public static string WireName(this MirrorSyncMode mode) => mode switch
    {
        MirrorSyncMode.Top => "top",
        MirrorSyncMode.Full => "full",
        MirrorSyncMode.None => "none",
        MirrorSyncMode.Incremental => "incremental",
        MirrorSyncMode.Bitmap => "bitmap",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>The QAPI name of a copy mode (<c>background</c>, <c>write-blocking</c>).</summary>
    public static string WireName(this MirrorCopyMode mode) => mode switch
    {
        MirrorCopyMode.Background => "background",
        MirrorCopyMode.WriteBlocking => "write-blocking",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>Parses a sync mode name; false for an unknown one.</summary>
    public static bool TryParseSyncMode(string name, out MirrorSyncMode mode) => TryParse(name, WireName, out mode);

    /// <summary>Parses a copy mode name; false for an unknown one.</summary>
    public static bool TryParseCopyMode(string name, out MirrorCopyMode mode) => TryParse(name, WireName, out mode);

    private static bool TryParse<T>(string name, Func<T, string> wireName, out T value)
        where T : struct, Enum
    {
        foreach (T candidate in Enum.GetValues<T>())
        {
            if (wireName(candidate) == name)
            {
                value = candidate;
                return true;
            }
        }

        value = default;
        return false;
    }
}
