using System.Text.Json.Serialization;

namespace JobCore.Block.Graph;

/// <summary>
/// One entry of <c>query-named-block-nodes</c> (QAPI <c>BlockDeviceInfo</c>); serialize with System.Text.Json to
/// get QEMU's member names. Throttling and threshold members are always 0 (JobCore has no I/O throttling).
/// </summary>
public sealed record BlockDeviceInfo
{
    /// <summary>The node's file name.</summary>
    [JsonPropertyName("file")]
    public required string File { get; init; }

    /// <summary>The node name.</summary>
    [JsonPropertyName("node-name")]
    public required string NodeName { get; init; }

    /// <summary>Whether the node is read-only.</summary>
    [JsonPropertyName("ro")]
    public required bool ReadOnly { get; init; }

    /// <summary>The driver name.</summary>
    [JsonPropertyName("drv")]
    public required string Driver { get; init; }

    /// <summary>The backing node's file name (or the header's string when no backing node is open).</summary>
    [JsonPropertyName("backing_file")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? BackingFile { get; init; }

    /// <summary>How many backing layers are open below the node.</summary>
    [JsonPropertyName("backing_file_depth")]
    public required int BackingFileDepth { get; init; }

    /// <summary>Always false (no encryption).</summary>
    [JsonPropertyName("encrypted")]
    public bool Encrypted { get; init; }

    /// <summary>Always <c>off</c>.</summary>
    [JsonPropertyName("detect_zeroes")]
    public string DetectZeroes { get; init; } = "off";

    /// <summary>Throttling: total bytes per second (0 = none).</summary>
    [JsonPropertyName("bps")]
    public long Bps { get; init; }

    /// <summary>Throttling: read bytes per second.</summary>
    [JsonPropertyName("bps_rd")]
    public long BpsRead { get; init; }

    /// <summary>Throttling: write bytes per second.</summary>
    [JsonPropertyName("bps_wr")]
    public long BpsWrite { get; init; }

    /// <summary>Throttling: total operations per second.</summary>
    [JsonPropertyName("iops")]
    public long Iops { get; init; }

    /// <summary>Throttling: read operations per second.</summary>
    [JsonPropertyName("iops_rd")]
    public long IopsRead { get; init; }

    /// <summary>Throttling: write operations per second.</summary>
    [JsonPropertyName("iops_wr")]
    public long IopsWrite { get; init; }

    /// <summary>The image description.</summary>
    [JsonPropertyName("image")]
    public required ImageInfo Image { get; init; }

    /// <summary>The cache mode (write-back, no O_DIRECT, flushes honoured).</summary>
    [JsonPropertyName("cache")]
    public BlockdevCacheInfo Cache { get; init; } = new();

    /// <summary>Always 0 (no write threshold).</summary>
    [JsonPropertyName("write_threshold")]
    public long WriteThreshold { get; init; }
}

/// <summary>QAPI <c>BlockdevCacheInfo</c>.</summary>
public sealed record BlockdevCacheInfo
{
    /// <summary>Write-back caching.</summary>
    [JsonPropertyName("writeback")]
    public bool Writeback { get; init; } = true;

    /// <summary>O_DIRECT.</summary>
    [JsonPropertyName("direct")]
    public bool Direct { get; init; }

    /// <summary>Flushes ignored.</summary>
    [JsonPropertyName("no-flush")]
    public bool NoFlush { get; init; }
}

/// <summary>QAPI <c>ImageInfo</c> (the members JobCore knows).</summary>
public sealed record ImageInfo
{
    /// <summary>The image's file name.</summary>
    [JsonPropertyName("filename")]
    public required string Filename { get; init; }

    /// <summary>The format (driver name; <c>file</c> for a protocol node).</summary>
    [JsonPropertyName("format")]
    public required string Format { get; init; }

    /// <summary>Always false.</summary>
    [JsonPropertyName("dirty-flag")]
    public bool DirtyFlag { get; init; }

    /// <summary>Bytes the image's host file occupies on disk, when it can be asked.</summary>
    [JsonPropertyName("actual-size")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? ActualSize { get; init; }

    /// <summary>The guest-visible size in bytes.</summary>
    [JsonPropertyName("virtual-size")]
    public required long VirtualSize { get; init; }

    /// <summary>The cluster size of a qcow2 image.</summary>
    [JsonPropertyName("cluster-size")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? ClusterSize { get; init; }

    /// <summary>The format's own facts (QAPI <c>ImageInfoSpecific</c>); qcow2 only.</summary>
    [JsonPropertyName("format-specific")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ImageInfoSpecific? FormatSpecific { get; init; }

    /// <summary>The backing file name as recorded in the header.</summary>
    [JsonPropertyName("backing-filename")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? BackingFilename { get; init; }

    /// <summary>The backing file name resolved (the open backing node's file name).</summary>
    [JsonPropertyName("full-backing-filename")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FullBackingFilename { get; init; }

    /// <summary>The backing format recorded in the header.</summary>
    [JsonPropertyName("backing-filename-format")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? BackingFilenameFormat { get; init; }

    /// <summary>The open backing node's image, recursively.</summary>
    [JsonPropertyName("backing-image")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ImageInfo? BackingImage { get; init; }
}

/// <summary>QAPI <c>ImageInfoSpecific</c>: the format's name and its facts.</summary>
public sealed record ImageInfoSpecific
{
    /// <summary>The format (<c>qcow2</c>).</summary>
    [JsonPropertyName("type")]
    public required string Type { get; init; }

    /// <summary>The facts.</summary>
    [JsonPropertyName("data")]
    public required ImageInfoSpecificQcow2 Data { get; init; }
}

/// <summary>QAPI <c>ImageInfoSpecificQCow2</c> (the members QEMU 7.2 prints for a plain image, in its order).</summary>
public sealed record ImageInfoSpecificQcow2
{
    /// <summary><c>0.10</c> (version 2) or <c>1.1</c> (version 3).</summary>
    [JsonPropertyName("compat")]
    public required string Compat { get; init; }

    /// <summary><c>zlib</c> or <c>zstd</c> (version 3 only).</summary>
    [JsonPropertyName("compression-type")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? CompressionType { get; init; }

    /// <summary>The lazy-refcounts compatible feature (version 3 only).</summary>
    [JsonPropertyName("lazy-refcounts")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? LazyRefcounts { get; init; }

    /// <summary>The refcount width in bits.</summary>
    [JsonPropertyName("refcount-bits")]
    public required int RefcountBits { get; init; }

    /// <summary>The corrupt incompatible feature (version 3 only).</summary>
    [JsonPropertyName("corrupt")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? Corrupt { get; init; }

    /// <summary>The extended-L2 incompatible feature (version 3 only).</summary>
    [JsonPropertyName("extended-l2")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? ExtendedL2 { get; init; }
}
