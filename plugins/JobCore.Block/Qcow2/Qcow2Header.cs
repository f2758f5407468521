using System.Buffers.Binary;
using System.Text;

namespace JobCore.Block.Nodes;

/// <summary>
/// The qcow2 header (cluster 0): fixed fields, header extensions and backing file name. <see cref="Parse"/> validates
/// everything that can be checked without reading other clusters; <see cref="Serialize"/> rebuilds cluster 0 the way
/// QEMU's <c>qcow2_update_header</c> does, keeping unknown additional header fields and unknown extensions.
/// </summary>
internal sealed class Qcow2Header
{
    internal const uint Magic = 0x514649fb;
    internal const int V2HeaderLength = 72;
    internal const int V3HeaderLength = 112;
    internal const int MinV3HeaderLength = 104;
    internal const int MaxBackingNameLength = 1023;
    internal const long MaxL1Bytes = 32L << 20;
    internal const long MaxRefcountTableBytes = 8L << 20;

    internal const uint ExtEnd = 0;
    internal const uint ExtBackingFormat = 0xe2792aca;
    internal const uint ExtFeatureTable = 0x6803f857;
    internal const uint ExtBitmaps = 0x23852875;
    internal const uint ExtCrypto = 0x0537be77;
    internal const uint ExtDataFile = 0x44415441;

    internal const ulong IncompatDirty = 1UL << 0;
    internal const ulong IncompatCorrupt = 1UL << 1;
    internal const ulong IncompatDataFile = 1UL << 2;
    internal const ulong IncompatCompression = 1UL << 3;
    internal const ulong IncompatExtendedL2 = 1UL << 4;
    internal const ulong CompatLazyRefcounts = 1UL << 0;

    // QEMU's feature name table, written on create (type, bit, name).
    private static readonly (byte Type, byte Bit, string Name)[] KnownFeatures =
    [
        (0, 0, "dirty bit"),
        (0, 1, "corrupt bit"),
        (0, 2, "external data file"),
        (0, 3, "compression type"),
        (0, 4, "extended L2 entries"),
        (1, 0, "lazy refcounts"),
        (2, 0, "bitmaps"),
        (2, 1, "raw external data"),
    ];

    internal int Version { get; set; }
    internal int ClusterBits { get; set; }
    internal int ClusterSize => 1 << ClusterBits;
    internal long Size { get; set; }
    internal uint CryptMethod { get; set; }
    internal int L1Size { get; set; }
    internal long L1TableOffset { get; set; }
    internal long RefcountTableOffset { get; set; }
    internal int RefcountTableClusters { get; set; }
    internal int SnapshotCount { get; set; }
    internal long SnapshotsOffset { get; set; }
    internal ulong IncompatibleFeatures { get; set; }
    internal ulong CompatibleFeatures { get; set; }
    internal ulong AutoclearFeatures { get; set; }
    internal int RefcountOrder { get; set; }
    internal int HeaderLength { get; set; }
    internal string? BackingFile { get; set; }
    internal string? BackingFormat { get; set; }

    /// <summary>Header bytes past the known fields (offset 112 up to header_length), kept verbatim on rewrite.</summary>
    internal byte[] ExtraHeaderBytes { get; set; } = [];

    /// <summary>Extensions other than backing format and feature table, in file order, kept verbatim on rewrite.</summary>
    internal List<(uint Type, byte[] Data)> OtherExtensions { get; } = [];

    /// <summary>The feature name table as read (type, bit) → name; QEMU's table when created by us.</summary>
    internal Dictionary<(byte Type, byte Bit), string> FeatureNames { get; } = [];

    internal bool HasFeatureTable { get; set; }

    internal int RefcountBits => 1 << RefcountOrder;

    /// <summary>A fresh version 3 header with QEMU's defaults (refcount order 4, header length 112, feature table).</summary>
    internal static Qcow2Header CreateV3(int clusterBits)
    {
        var h = new Qcow2Header
        {
            Version = 3,
            ClusterBits = clusterBits,
            RefcountOrder = 4,
            HeaderLength = V3HeaderLength,
            HasFeatureTable = true,
        };
        foreach (var (type, bit, name) in KnownFeatures)
        {
            h.FeatureNames[(type, bit)] = name;
        }

        return h;
    }

    /// <summary>Parses and validates cluster 0 (<paramref name="data"/> holds at least the first cluster, or the whole file if smaller).</summary>
    /// <param name="data">The first bytes of the image.</param>
    /// <param name="fileLength">The image file length, for range checks.</param>
    /// <param name="name">The image name used in messages.</param>
    internal static Qcow2Header Parse(ReadOnlySpan<byte> data, long fileLength, string name)
    {
        if (data.Length < V2HeaderLength)
        {
            throw Bad(name, $"file too short for a qcow2 header ({data.Length} bytes)");
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(data) != Magic)
        {
            throw Bad(name, "bad magic (not a qcow2 image)");
        }

        var h = new Qcow2Header { Version = (int)BinaryPrimitives.ReadUInt32BigEndian(data[4..]) };
        if (h.Version is not (2 or 3))
        {
            throw Bad(name, $"unsupported qcow2 version {(uint)h.Version}");
        }

        long backingOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(data[8..]), long.MaxValue);
        uint backingSize = BinaryPrimitives.ReadUInt32BigEndian(data[16..]);
        uint clusterBits = BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
        if (clusterBits is < 9 or > 21)
        {
            throw Bad(name, $"cluster_bits {clusterBits} out of range (cluster size must be 512 B to 2 MiB)");
        }

        h.ClusterBits = (int)clusterBits;
        int cs = h.ClusterSize;
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(data[24..]);
        if (size > long.MaxValue / 2)
        {
            throw Bad(name, $"virtual size {size} too large");
        }

        h.Size = (long)size;
        h.CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(data[32..]);
        uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(data[36..]);
        ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(data[40..]);
        ulong rtOffset = BinaryPrimitives.ReadUInt64BigEndian(data[48..]);
        uint rtClusters = BinaryPrimitives.ReadUInt32BigEndian(data[56..]);
        uint nbSnapshots = BinaryPrimitives.ReadUInt32BigEndian(data[60..]);
        h.SnapshotsOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(data[64..]), long.MaxValue);

        if (h.Version == 2)
        {
            h.HeaderLength = V2HeaderLength;
            h.RefcountOrder = 4;
        }
        else
        {
            if (data.Length < MinV3HeaderLength)
            {
                throw Bad(name, "file too short for a version 3 header");
            }

            h.IncompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(data[72..]);
            h.CompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(data[80..]);
            h.AutoclearFeatures = BinaryPrimitives.ReadUInt64BigEndian(data[88..]);
            uint order = BinaryPrimitives.ReadUInt32BigEndian(data[96..]);
            uint headerLength = BinaryPrimitives.ReadUInt32BigEndian(data[100..]);
            if (headerLength < MinV3HeaderLength)
            {
                throw Bad(name, $"header_length {headerLength} too short (at least {MinV3HeaderLength})");
            }

            if (headerLength > cs || headerLength > data.Length)
            {
                throw Bad(name, $"header_length {headerLength} exceeds the cluster size");
            }

            if (headerLength % 8 != 0)
            {
                throw Bad(name, $"header_length {headerLength} is not a multiple of 8");
            }

            if (order > 6)
            {
                throw Bad(name, $"refcount_order {order} out of range (at most 6)");
            }

            h.RefcountOrder = (int)order;
            h.HeaderLength = (int)headerLength;
            if (headerLength > 104 && data[104] != 0 && (h.IncompatibleFeatures & IncompatCompression) == 0)
            {
                throw Bad(name, $"compression_type {data[104]} set without the compression type feature bit");
            }

            if (headerLength > V3HeaderLength)
            {
                h.ExtraHeaderBytes = data[V3HeaderLength..(int)headerLength].ToArray();
            }
        }

        // Extensions run from the end of the header to the backing file name (or the end of cluster 0).
        long extLimit = Math.Min(cs, data.Length);
        if (backingOffset != 0)
        {
            if (backingOffset < h.HeaderLength || backingOffset > cs || backingSize > MaxBackingNameLength ||
                backingOffset + backingSize > cs || backingOffset + backingSize > data.Length)
            {
                throw Bad(name, $"backing file name (offset {backingOffset}, length {backingSize}) does not lie inside cluster 0 after the header or is longer than {MaxBackingNameLength} bytes");
            }

            extLimit = Math.Min(extLimit, backingOffset);
            h.BackingFile = DecodeString(data.Slice((int)backingOffset, (int)backingSize), name, "backing file name");
        }

        h.ParseExtensions(data[..(int)extLimit], name);

        if (h.CryptMethod != 0)
        {
            throw new BlockFormatException($"Image '{name}' is encrypted (crypt_method {h.CryptMethod}); encrypted qcow2 images are not supported");
        }

        if (nbSnapshots != 0)
        {
            throw new BlockFormatException($"Image '{name}' has {nbSnapshots} internal snapshot(s) (nb_snapshots); internal snapshots are not supported");
        }

        h.CheckIncompatibleFeatures(name);

        if (l1Offset % (ulong)cs != 0)
        {
            throw Bad(name, $"l1_table_offset {l1Offset:#x} is not aligned to the cluster size");
        }

        if ((long)l1Size * 8 > MaxL1Bytes)
        {
            throw Bad(name, $"l1_size {l1Size} too large (active L1 table larger than {MaxL1Bytes >> 20} MiB)");
        }

        long clustersNeeded = (h.Size + cs - 1) / cs;
        long l2Entries = cs / 8;
        long l1Needed = (clustersNeeded + l2Entries - 1) / l2Entries;
        if (l1Size < l1Needed)
        {
            throw Bad(name, $"l1_size {l1Size} too small for virtual size {h.Size} (needs {l1Needed} entries)");
        }

        if (l1Size > 0 && (l1Offset == 0 || l1Offset > (ulong)fileLength || (long)l1Offset + (long)l1Size * 8 > fileLength))
        {
            throw Bad(name, $"L1 table (offset {l1Offset:#x}, {l1Size} entries) lies outside the file ({fileLength} bytes)");
        }

        h.L1Size = (int)l1Size;
        h.L1TableOffset = (long)l1Offset;

        if (rtOffset % (ulong)cs != 0 || rtOffset == 0)
        {
            throw Bad(name, $"refcount_table_offset {rtOffset:#x} is zero or not aligned to the cluster size");
        }

        if (rtClusters == 0 || (long)rtClusters * cs > MaxRefcountTableBytes)
        {
            throw Bad(name, $"refcount_table_clusters {rtClusters} out of range (1 to {MaxRefcountTableBytes / cs})");
        }

        if (rtOffset > (ulong)fileLength || (long)rtOffset + (long)rtClusters * cs > fileLength + cs)
        {
            // The last table cluster may be partially written (QEMU does not pad files); anything further is bogus.
            throw Bad(name, $"refcount table (offset {rtOffset:#x}, {rtClusters} clusters) lies outside the file ({fileLength} bytes)");
        }

        h.RefcountTableOffset = (long)rtOffset;
        h.RefcountTableClusters = (int)rtClusters;
        return h;
    }

    /// <summary>Builds cluster 0: header, extensions (QEMU's order), end marker, backing file name.</summary>
    /// <exception cref="BlockIOException">The extensions and backing name do not fit in one cluster.</exception>
    internal byte[] Serialize()
    {
        int cs = ClusterSize;
        var buf = new byte[cs];
        Span<byte> s = buf;
        int headerLength = Version == 2 ? V2HeaderLength : HeaderLength;
        BinaryPrimitives.WriteUInt32BigEndian(s, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], (uint)Version);
        BinaryPrimitives.WriteUInt32BigEndian(s[20..], (uint)ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(s[24..], (ulong)Size);
        BinaryPrimitives.WriteUInt32BigEndian(s[32..], CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(s[36..], (uint)L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(s[40..], (ulong)L1TableOffset);
        BinaryPrimitives.WriteUInt64BigEndian(s[48..], (ulong)RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[56..], (uint)RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(s[60..], (uint)SnapshotCount);
        BinaryPrimitives.WriteUInt64BigEndian(s[64..], (ulong)SnapshotsOffset);
        if (Version >= 3)
        {
            BinaryPrimitives.WriteUInt64BigEndian(s[72..], IncompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(s[80..], CompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(s[88..], AutoclearFeatures);
            BinaryPrimitives.WriteUInt32BigEndian(s[96..], (uint)RefcountOrder);
            BinaryPrimitives.WriteUInt32BigEndian(s[100..], (uint)headerLength);
            ExtraHeaderBytes.CopyTo(s[V3HeaderLength..]);
        }

        int pos = headerLength;
        if (BackingFormat is not null)
        {
            pos = PutExtension(s, pos, ExtBackingFormat, Encoding.UTF8.GetBytes(BackingFormat));
        }

        foreach (var (type, data) in OtherExtensions.Where(e => e.Type is ExtDataFile or ExtCrypto or ExtBitmaps))
        {
            pos = PutExtension(s, pos, type, data);
        }

        // Like QEMU, no feature table with clusters of 4 KiB or less: it would leave hardly any room for a backing name.
        if (HasFeatureTable && Version >= 3 && ClusterSize > 4096)
        {
            var table = new byte[FeatureNames.Count * 48];
            int i = 0;
            foreach (var ((type, bit), name) in FeatureNames.OrderBy(f => f.Key.Type).ThenBy(f => f.Key.Bit))
            {
                table[i * 48] = type;
                table[(i * 48) + 1] = bit;
                int n = Math.Min(46, Encoding.UTF8.GetByteCount(name));
                Encoding.UTF8.GetBytes(name).AsSpan(0, n).CopyTo(table.AsSpan((i * 48) + 2));
                i++;
            }

            pos = PutExtension(s, pos, ExtFeatureTable, table);
        }

        foreach (var (type, data) in OtherExtensions.Where(e => e.Type is not (ExtDataFile or ExtCrypto or ExtBitmaps)))
        {
            pos = PutExtension(s, pos, type, data);
        }

        pos = PutExtension(s, pos, ExtEnd, []);
        if (BackingFile is not null)
        {
            byte[] nameBytes = Encoding.UTF8.GetBytes(BackingFile);
            if (nameBytes.Length > MaxBackingNameLength || pos + nameBytes.Length > cs)
            {
                throw new BlockIOException(BlockIOException.EINVAL, $"Backing file name '{BackingFile}' does not fit in the qcow2 header cluster");
            }

            nameBytes.CopyTo(s[pos..]);
            BinaryPrimitives.WriteUInt64BigEndian(s[8..], (ulong)pos);
            BinaryPrimitives.WriteUInt32BigEndian(s[16..], (uint)nameBytes.Length);
        }

        return buf;
    }

    /// <summary>The names of the set bits of <paramref name="bits"/> (feature table names, else "unknown feature bit N").</summary>
    internal string FeatureList(byte type, ulong bits)
    {
        var names = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((bits & (1UL << bit)) != 0)
            {
                names.Add(FeatureNames.TryGetValue((type, (byte)bit), out string? n) ? $"{n} (bit {bit})" : $"unknown feature bit {bit}");
            }
        }

        return string.Join(", ", names);
    }

    private static int PutExtension(Span<byte> s, int pos, uint type, byte[] data)
    {
        int padded = (data.Length + 7) & ~7;
        if (pos + 8 + padded > s.Length)
        {
            throw new BlockIOException(BlockIOException.EINVAL, "qcow2 header extensions do not fit in the first cluster");
        }

        BinaryPrimitives.WriteUInt32BigEndian(s[pos..], type);
        BinaryPrimitives.WriteUInt32BigEndian(s[(pos + 4)..], (uint)data.Length);
        data.CopyTo(s[(pos + 8)..]);
        return pos + 8 + padded;
    }

    private void ParseExtensions(ReadOnlySpan<byte> area, string name)
    {
        int pos = HeaderLength;
        var seen = new HashSet<uint>();
        while (pos + 8 <= area.Length)
        {
            uint type = BinaryPrimitives.ReadUInt32BigEndian(area[pos..]);
            uint len = BinaryPrimitives.ReadUInt32BigEndian(area[(pos + 4)..]);
            if (type == ExtEnd)
            {
                return;
            }

            if (len > area.Length - pos - 8)
            {
                throw Bad(name, $"header extension {type:x8} at offset {pos} has length {len}, which runs past the extension area");
            }

            if (!seen.Add(type))
            {
                throw Bad(name, $"header extension {type:x8} appears more than once");
            }

            ReadOnlySpan<byte> data = area.Slice(pos + 8, (int)len);
            switch (type)
            {
                case ExtBackingFormat:
                    if (len > MaxBackingNameLength)
                    {
                        throw Bad(name, $"backing format extension too long ({len} bytes)");
                    }

                    BackingFormat = DecodeString(data, name, "backing format");
                    break;
                case ExtFeatureTable:
                    HasFeatureTable = true;
                    for (int i = 0; i + 48 <= data.Length; i += 48)
                    {
                        string fname = Encoding.UTF8.GetString(data.Slice(i + 2, 46)).TrimEnd('\0');
                        FeatureNames[(data[i], data[i + 1])] = fname;
                    }

                    break;
                case ExtCrypto:
                    throw new BlockFormatException($"Image '{name}' has a crypto header extension; encrypted qcow2 images are not supported");
                default:
                    OtherExtensions.Add((type, data.ToArray()));
                    break;
            }

            pos += 8 + (int)((len + 7) & ~7u);
        }
    }

    private void CheckIncompatibleFeatures(string name)
    {
        const ulong Supported = IncompatDirty | IncompatCorrupt;
        ulong unsupported = IncompatibleFeatures & ~Supported;
        if (unsupported != 0)
        {
            throw new BlockFormatException($"Image '{name}' uses unsupported qcow2 feature(s): {FeatureList(0, unsupported)}");
        }
    }

    private static string DecodeString(ReadOnlySpan<byte> bytes, string name, string field)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new BlockFormatException($"Image '{name}': {field} is not valid UTF-8", e);
        }
    }

    private static BlockFormatException Bad(string name, string what) => new($"Image '{name}' is not a valid qcow2 image: {what}");
}
