using System.Buffers.Binary;

namespace JobCore.Block.Nodes;

/// <summary>The findings of <see cref="Qcow2Check"/> (the numbers <c>qemu-img check</c> prints).</summary>
public sealed class Qcow2CheckResult
{
    internal Qcow2CheckResult(IReadOnlyList<string> messages, int corruptions, int leaks, long totalClusters, long allocatedClusters,
        long fragmentedClusters, long compressedClusters, long imageEndOffset)
    {
        Messages = messages;
        Corruptions = corruptions;
        Leaks = leaks;
        TotalClusters = totalClusters;
        AllocatedClusters = allocatedClusters;
        FragmentedClusters = fragmentedClusters;
        CompressedClusters = compressedClusters;
        ImageEndOffset = imageEndOffset;
    }

    /// <summary>One line per finding, in QEMU's wording (<c>ERROR cluster 5 refcount=0 reference=1</c>, <c>Leaked cluster 9 refcount=1 reference=0</c>, ...).</summary>
    public IReadOnlyList<string> Messages { get; }

    /// <summary>Errors that can lose data: clusters referenced more often than their refcount says, invalid entries, references past the end of the file.</summary>
    public int Corruptions { get; }

    /// <summary>Clusters whose refcount is higher than the number of references (wasted space, harmless).</summary>
    public int Leaks { get; }

    /// <summary>The number of guest clusters (virtual size / cluster size, rounded up).</summary>
    public long TotalClusters { get; }

    /// <summary>Guest clusters with host storage (normal, preallocated zero and compressed clusters).</summary>
    public long AllocatedClusters { get; }

    /// <summary>Allocated guest clusters not stored right after the previous one (compressed clusters always count).</summary>
    public long FragmentedClusters { get; }

    /// <summary>Compressed guest clusters.</summary>
    public long CompressedClusters { get; }

    /// <summary>The end of the last host cluster in use.</summary>
    public long ImageEndOffset { get; }

    /// <summary>No corruptions and no leaks.</summary>
    public bool IsClean => Corruptions == 0 && Leaks == 0;
}

/// <summary>
/// A read-only metadata checker like <c>qemu-img check</c>: recomputes every cluster's reference count from the
/// header, L1/L2 tables (data and compressed clusters), refcount table and blocks and persistent bitmaps, then
/// compares with the stored refcounts. It never writes.
/// </summary>
public static class Qcow2Check
{
    private const ulong OflagCopied = 1UL << 63;
    private const ulong OflagCompressed = 1UL << 62;
    private const ulong OffsetMask = 0x00fffffffffffe00UL;
    private const ulong L1Reserved = 0x7f000000000001ffUL;
    private const ulong L2Reserved = 0x3f000000000001feUL;

    /// <summary>Checks the image in the host file <paramref name="filename"/> (opened read-only).</summary>
    /// <param name="filename">The image file.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The findings.</returns>
    /// <exception cref="BlockFormatException">The header cannot be parsed (not qcow2, unsupported feature).</exception>
    /// <exception cref="BlockIOException">The file cannot be opened or read.</exception>
    public static async ValueTask<Qcow2CheckResult> CheckFileAsync(string filename, CancellationToken cancellationToken = default)
    {
        FileNode file = await FileNode.OpenAsync("check", filename, readOnly: true, cancellationToken).ConfigureAwait(false);
        await using (file.ConfigureAwait(false))
        {
            return await CheckAsync(file, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Checks the qcow2 image stored in <paramref name="file"/> (a protocol node; only read).</summary>
    /// <param name="file">The node holding the image bytes.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The findings.</returns>
    /// <exception cref="BlockFormatException">The header cannot be parsed (not qcow2, unsupported feature).</exception>
    public static async ValueTask<Qcow2CheckResult> CheckAsync(BlockNode file, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        var run = new CheckRun(file);
        await run.RunAsync(cancellationToken).ConfigureAwait(false);
        return run.BuildResult();
    }

    private sealed class CheckRun(BlockNode file)
    {
        private readonly List<string> _messages = [];
        private readonly long _fileSize = file.Size;
        private Qcow2Header _header = null!;
        private int _bits;
        private int _cs;
        private uint[] _refs = [];
        private int _corruptions;
        private int _leaks;
        private long _allocated;
        private long _fragmented;
        private long _compressed;
        private long _nextContiguous;
        private long _highestStored = -1;
        private byte[] _refTable = [];

        internal async ValueTask RunAsync(CancellationToken cancellationToken)
        {
            string name = file is FileNode f ? f.Filename : file.NodeName;
            byte[] first = new byte[(int)Math.Min(_fileSize, 2 << 20)];
            await file.ReadAsync(0, first, cancellationToken).ConfigureAwait(false);
            _header = Qcow2Header.Parse(first, _fileSize, name);
            _bits = _header.ClusterBits;
            _cs = _header.ClusterSize;
            _refs = new uint[(_fileSize + _cs - 1) >> _bits];

            Reference(0, _cs, "header");
            byte[] l1 = await ReadAsync(_header.L1TableOffset, _header.L1Size * 8, cancellationToken).ConfigureAwait(false);
            Reference(_header.L1TableOffset, l1.Length, "L1 table");
            var seenL2 = new HashSet<long>();
            var l2Copied = new List<(int Index, ulong Entry, long Offset)>();
            var dataCopied = new List<(ulong Entry, long Offset)>();
            for (int i = 0; i < _header.L1Size; i++)
            {
                ulong e = BinaryPrimitives.ReadUInt64BigEndian(l1.AsSpan(i * 8));
                long l2Offset = (long)(e & OffsetMask);
                if (e == 0)
                {
                    continue;
                }

                if ((e & L1Reserved) != 0 || (l2Offset & (_cs - 1)) != 0 || l2Offset == 0)
                {
                    Corrupt($"ERROR l2_offset={l2Offset:x}: Table is not cluster aligned or has reserved bits set; L1 entry {i} ({e:x}) corrupted");
                    continue;
                }

                if (!Reference(l2Offset, _cs, $"L2 table of L1 entry {i}") || !seenL2.Add(l2Offset))
                {
                    continue;
                }

                l2Copied.Add((i, e, l2Offset));
                byte[] l2 = await ReadAsync(l2Offset, _cs, cancellationToken).ConfigureAwait(false);
                CheckL2(l2, dataCopied);
            }

            Reference(_header.RefcountTableOffset, (long)_header.RefcountTableClusters * _cs, "refcount table");
            _refTable = await ReadAsync(_header.RefcountTableOffset, _header.RefcountTableClusters * _cs, cancellationToken).ConfigureAwait(false);
            var blocks = new Dictionary<long, byte[]>();
            for (int i = 0; i < _refTable.Length / 8; i++)
            {
                ulong e = BinaryPrimitives.ReadUInt64BigEndian(_refTable.AsSpan(i * 8));
                if (e == 0)
                {
                    continue;
                }

                if ((e & 0x1ff) != 0 || ((long)e & (_cs - 1)) != 0)
                {
                    Corrupt($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
                    continue;
                }

                if (e >= (ulong)_fileSize)
                {
                    Corrupt($"ERROR refcount block {i} is outside image");
                    continue;
                }

                Reference((long)e, _cs, $"refcount block {i}");
                blocks[i] = await ReadAsync((long)e, _cs, cancellationToken).ConfigureAwait(false);
            }

            await ReferenceBitmapsAsync(cancellationToken).ConfigureAwait(false);
            CompareRefcounts(blocks);
            foreach (var (index, entry, offset) in l2Copied)
            {
                ulong refcount = StoredRefcount(blocks, offset >> _bits);
                if ((refcount == 1) != ((entry & OflagCopied) != 0))
                {
                    Corrupt($"ERROR OFLAG_COPIED L2 cluster: l1_index={index} l1_entry={entry:x} refcount={refcount}");
                }
            }

            foreach (var (entry, offset) in dataCopied)
            {
                ulong refcount = StoredRefcount(blocks, offset >> _bits);
                if ((refcount == 1) != ((entry & OflagCopied) != 0))
                {
                    Corrupt($"ERROR OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={refcount}");
                }
            }
        }

        internal Qcow2CheckResult BuildResult()
        {
            long highest = _highestStored;
            for (long c = _refs.Length - 1; c > highest; c--)
            {
                if (_refs[c] != 0)
                {
                    highest = c;
                    break;
                }
            }

            long total = _header is null ? 0 : (_header.Size + _cs - 1) >> _bits;
            return new Qcow2CheckResult(_messages, _corruptions, _leaks, total, _allocated, _fragmented, _compressed, (highest + 1) * _cs);
        }

        private void CheckL2(byte[] l2, List<(ulong Entry, long Offset)> dataCopied)
        {
            // Like QEMU, contiguity is judged within one L2 table.
            _nextContiguous = 0;
            for (int j = 0; j < _cs / 8; j++)
            {
                ulong e = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * 8));
                if (e == 0)
                {
                    continue;
                }

                if ((e & OflagCompressed) != 0)
                {
                    if ((e & OflagCopied) != 0)
                    {
                        Corrupt($"ERROR: compressed cluster entry {e:x} has the copied flag set");
                        continue;
                    }

                    int x = 62 - (_bits - 8);
                    long offset = (long)(e & ((1UL << x) - 1));
                    long sectors = (long)((e >> x) & ((1UL << (_bits - 8)) - 1)) + 1;
                    _allocated++;
                    _compressed++;
                    _fragmented++;
                    Reference(offset & ~511L, sectors * 512, "compressed cluster");
                    continue;
                }

                long host = (long)(e & OffsetMask);
                bool zero = (e & 1) != 0;
                if ((e & L2Reserved) != 0 || (zero && _header.Version < 3))
                {
                    Corrupt($"ERROR: L2 entry {e:x} has reserved bits set");
                    continue;
                }

                if ((host & (_cs - 1)) != 0)
                {
                    Corrupt($"ERROR offset={host:x}: Cluster is not properly aligned; L2 entry corrupted");
                    continue;
                }

                if (host == 0)
                {
                    if (!zero && (e & OflagCopied) != 0)
                    {
                        Corrupt($"ERROR: L2 entry {e:x} has the copied flag but no offset");
                    }

                    continue;
                }

                _allocated++;
                if (_nextContiguous != 0 && host != _nextContiguous)
                {
                    _fragmented++;
                }

                _nextContiguous = host + _cs;
                if (Reference(host, _cs, "data cluster"))
                {
                    dataCopied.Add((e, host));
                }
            }
        }

        /// <summary>Counts persistent dirty bitmaps (directory, tables, data) like QEMU: only when the autoclear bit says they are valid.</summary>
        private async ValueTask ReferenceBitmapsAsync(CancellationToken cancellationToken)
        {
            var ext = _header.OtherExtensions.FirstOrDefault(x => x.Type == Qcow2Header.ExtBitmaps);
            if (ext.Data is null || ext.Data.Length < 24 || (_header.AutoclearFeatures & 1) == 0)
            {
                return;
            }

            uint count = BinaryPrimitives.ReadUInt32BigEndian(ext.Data);
            long dirSize = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(ext.Data.AsSpan(8)), int.MaxValue);
            long dirOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(ext.Data.AsSpan(16)), long.MaxValue);
            if (!Reference(dirOffset, dirSize, "bitmap directory") || dirSize > 64 << 20)
            {
                return;
            }

            byte[] dir = await ReadAsync(dirOffset, (int)dirSize, cancellationToken).ConfigureAwait(false);
            int pos = 0;
            for (uint b = 0; b < count && pos + 24 <= dir.Length; b++)
            {
                long tableOffset = (long)(BinaryPrimitives.ReadUInt64BigEndian(dir.AsSpan(pos)) & OffsetMask);
                long tableSize = BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(pos + 8));
                int nameSize = BinaryPrimitives.ReadUInt16BigEndian(dir.AsSpan(pos + 18));
                long extra = BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(pos + 20));
                pos += (int)Math.Min(int.MaxValue / 2, (24 + extra + nameSize + 7) & ~7L);
                if (tableSize > 0 && Reference(tableOffset, tableSize * 8, "bitmap table") && tableSize <= 8 << 20)
                {
                    byte[] table = await ReadAsync(tableOffset, (int)(tableSize * 8), cancellationToken).ConfigureAwait(false);
                    for (int i = 0; i < tableSize; i++)
                    {
                        long data = (long)(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(i * 8)) & OffsetMask);
                        if (data != 0)
                        {
                            Reference(data, _cs, "bitmap data");
                        }
                    }
                }
            }
        }

        private void CompareRefcounts(Dictionary<long, byte[]> blocks)
        {
            // Like QEMU, only clusters inside the file are compared; the image ends after the last cluster that is
            // referenced or has a refcount (leaked clusters count).
            for (long c = 0; c < _refs.Length; c++)
            {
                ulong stored = StoredRefcount(blocks, c);
                uint computed = _refs[c];
                if (stored > 0)
                {
                    _highestStored = c;
                }

                if (stored < computed)
                {
                    Corrupt($"ERROR cluster {c} refcount={stored} reference={computed}");
                }
                else if (stored > computed)
                {
                    _leaks++;
                    _messages.Add($"Leaked cluster {c} refcount={stored} reference={computed}");
                }
            }
        }

        private ulong StoredRefcount(Dictionary<long, byte[]> blocks, long cluster)
        {
            int entriesPerBlockBits = _bits + 3 - _header.RefcountOrder;
            return blocks.TryGetValue(cluster >> entriesPerBlockBits, out byte[]? block)
                ? Qcow2Refcounts.Get(block, _header.RefcountOrder, (int)(cluster & ((1L << entriesPerBlockBits) - 1)))
                : 0;
        }

        /// <summary>Adds one reference to every cluster of a byte range; false (and a corruption) when it leaves the file.</summary>
        private bool Reference(long offset, long length, string what)
        {
            if (length <= 0)
            {
                return true;
            }

            if (offset < 0 || offset >= _fileSize || offset + length > ((_fileSize + _cs - 1) & ~((long)_cs - 1)))
            {
                Corrupt($"ERROR {what} at offset {offset:#x} (+{length}) lies beyond the end of the file ({_fileSize} bytes)");
                return false;
            }

            for (long c = offset >> _bits; c <= (offset + length - 1) >> _bits; c++)
            {
                if (_refs[c] != uint.MaxValue)
                {
                    _refs[c]++;
                }
            }

            return true;
        }

        private void Corrupt(string message)
        {
            _corruptions++;
            _messages.Add(message);
        }

        private async ValueTask<byte[]> ReadAsync(long offset, int length, CancellationToken cancellationToken)
        {
            byte[] data = new byte[length];
            long inside = Math.Clamp(_fileSize - offset, 0, length);
            if (inside > 0)
            {
                await file.ReadAsync(offset, data.AsMemory(0, (int)inside), cancellationToken).ConfigureAwait(false);
            }

            return data;
        }
    }
}
