using System.Buffers.Binary;
using System.Numerics;

namespace JobCore.Block.Nodes;

// Image creation, resize (L1 growth) and backing file changes: the operations that rewrite header fields.
public sealed partial class Qcow2Node
{
    /// <summary>
    /// Creates (or overwrites) a version 3 image with QEMU's layout: header in cluster 0, refcount table in cluster 1,
    /// refcount block in cluster 2, L1 table from cluster 3, feature name table and backing format extension in the
    /// header. The size is rounded up to a multiple of 512 like <c>qemu-img create</c>.
    /// </summary>
    /// <param name="filename">The image file to write.</param>
    /// <param name="options">Size, cluster size, backing file and format.</param>
    /// <param name="cancellationToken">Cancels the creation (the file may then be incomplete).</param>
    /// <returns>A task that completes when the image is stable on disk.</returns>
    /// <exception cref="ArgumentException">Invalid cluster size or size, or a backing format without a backing file.</exception>
    /// <exception cref="BlockIOException">The backing file (needed for the size) cannot be opened, or the file cannot be written.</exception>
    public static async ValueTask CreateAsync(string filename, Qcow2CreateOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        ArgumentNullException.ThrowIfNull(options);
        int cs = options.ClusterSize;
        if (cs is < 512 or > (2 << 20) || !BitOperations.IsPow2(cs))
        {
            throw new ArgumentException("Cluster size must be a power of two between 512 and 2048k", nameof(options));
        }

        if (options.BackingFormat is not null && options.BackingFile is null)
        {
            throw new ArgumentException("Backing format cannot be used without backing file", nameof(options));
        }

        if (options.Size < 0)
        {
            throw new ArgumentException($"Invalid image size {options.Size}", nameof(options));
        }

        long size = options.Size;
        string? backingFormat = options.BackingFormat;
        if (options.BackingFile is not null && (size == 0 || backingFormat is null))
        {
            (long backingSize, string probed) = await ProbeBackingAsync(filename, options.BackingFile, backingFormat, cancellationToken).ConfigureAwait(false);
            size = size == 0 ? backingSize : size;
            backingFormat ??= probed;
        }

        size = (size + 511) & ~511L;
        var header = Qcow2Header.CreateV3(BitOperations.Log2((uint)cs));
        header.RefcountTableOffset = cs;
        header.RefcountTableClusters = 1;
        header.BackingFile = options.BackingFile;
        header.BackingFormat = options.BackingFile is null ? null : backingFormat;
        byte[] start = new byte[3 * cs];
        header.Serialize().CopyTo(start, 0);
        BinaryPrimitives.WriteUInt64BigEndian(start.AsSpan(cs), (ulong)(2 * cs));
        for (int cluster = 0; cluster < 3; cluster++)
        {
            Qcow2Refcounts.TrySet(start.AsSpan(2 * cs, cs), header.RefcountOrder, cluster, 1);
        }

        try
        {
            using (var handle = System.IO.File.OpenHandle(filename, FileMode.Create, FileAccess.ReadWrite, FileShare.ReadWrite))
            {
                await RandomAccess.WriteAsync(handle, start, 0, cancellationToken).ConfigureAwait(false);
                RandomAccess.FlushToDisk(handle);
            }
        }
        catch (IOException e)
        {
            throw FileNode.ToBlockIOException(e, $"Could not create '{filename}'");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new BlockIOException(BlockIOException.EACCES, $"Could not create '{filename}': Permission denied", e);
        }

        FileNode file = await FileNode.OpenAsync("create", filename, readOnly: false, cancellationToken).ConfigureAwait(false);
        await using (file.ConfigureAwait(false))
        {
            Qcow2Node node = await OpenAsync("create", file, readOnly: false, cancellationToken).ConfigureAwait(false);
            await using (node.ConfigureAwait(false))
            {
                await node.ResizeAsync(size, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Grows the virtual size (QEMU's <c>block_resize</c>): the L1 table is replaced by a larger one when needed
    /// (new table written and flushed, then the header switched with one 12-byte write, then the old table freed).
    /// </summary>
    /// <param name="newSize">The new size in bytes (not smaller than the current size; rounded up to 512).</param>
    /// <param name="cancellationToken">Cancels before the header changes.</param>
    /// <returns>A task that completes when the new size is stable.</returns>
    /// <exception cref="BlockIOException">The node is read-only (EPERM) or shrinking was asked (ENOTSUP).</exception>
    public async ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EPERM, $"Block node '{NodeName}' is read-only");
        }

        newSize = (newSize + 511) & ~511L;
        if (newSize < Size)
        {
            throw new BlockIOException(BlockIOException.ENOTSUP, $"Shrinking qcow2 image '{_imageName}' is not supported");
        }

        try
        {
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfNotWritable();
                cancellationToken = CancellationToken.None; // no cancellation halfway through an L1 switch
                await PrepareFirstWriteAsync(cancellationToken).ConfigureAwait(false);
                long clusters = (newSize + _clusterSize - 1) >> _clusterBits;
                long l1Needed = (clusters + (1L << _l2Bits) - 1) >> _l2Bits;
                if (l1Needed > L1Size)
                {
                    await GrowL1Async(l1Needed, cancellationToken).ConfigureAwait(false);
                }

                byte[] field = new byte[8];
                BinaryPrimitives.WriteUInt64BigEndian(field, (ulong)newSize);
                await _file.WriteAsync(24, field, cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                _header.Size = newSize;
            }
            finally
            {
                _lock.Release();
            }
        }
        catch (Qcow2CorruptionException e)
        {
            throw await OnCorruptionAsync(e).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Rewrites the backing file name and format in the header (cluster 0 in one write, after all other metadata is
    /// stable). Used at stream/commit completion. Does not change <see cref="Backing"/> (see <see cref="SetBackingNode"/>).
    /// </summary>
    /// <param name="backingFile">The new backing file name, or <see langword="null"/> to make the image standalone.</param>
    /// <param name="backingFormat">The backing format (<c>qcow2</c>, <c>raw</c>), or <see langword="null"/> for none.</param>
    /// <param name="cancellationToken">Cancels before the header is written.</param>
    /// <returns>A task that completes when the new header is stable.</returns>
    /// <exception cref="BlockIOException">The node is read-only, or the name does not fit in cluster 0 (EINVAL).</exception>
    public async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        if (backingFile is null && backingFormat is not null)
        {
            throw new ArgumentException("Backing format cannot be used without backing file", nameof(backingFormat));
        }

        if (ReadOnly)
        {
            throw new BlockIOException(BlockIOException.EPERM, $"Block node '{NodeName}' is read-only");
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfNotWritable();
            cancellationToken = CancellationToken.None;
            await FlushMetadataAsync(cancellationToken).ConfigureAwait(false);
            string? oldFile = _header.BackingFile;
            string? oldFormat = _header.BackingFormat;
            ulong oldAutoclear = _header.AutoclearFeatures;
            _header.BackingFile = string.IsNullOrEmpty(backingFile) ? null : backingFile;
            _header.BackingFormat = _header.BackingFile is null ? null : backingFormat;
            _header.AutoclearFeatures = 0;
            try
            {
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // A name that does not fit (EINVAL) or a failed write: memory keeps describing the old header.
                _header.BackingFile = oldFile;
                _header.BackingFormat = oldFormat;
                _header.AutoclearFeatures = oldAutoclear;
                throw;
            }

            AutoBackingFile = _header.BackingFile;
            _firstWritePrepared = true;
        }
        catch (Qcow2CorruptionException e)
        {
            throw new BlockIOException(BlockIOException.EIO, $"Image '{_imageName}' is corrupt: {e.Message}", e);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Replaces the L1 table by one of <paramref name="entries"/> entries (caller holds the lock).</summary>
    private async ValueTask GrowL1Async(long entries, CancellationToken cancellationToken)
    {
        if (entries * 8 > Qcow2Header.MaxL1Bytes)
        {
            throw new BlockIOException(BlockIOException.EFBIG, $"Image '{_imageName}' would need an L1 table larger than {Qcow2Header.MaxL1Bytes >> 20} MiB");
        }

        // Pending L1 entries go to the old table first, so the copy below only holds stable references.
        await FlushMetadataAsync(cancellationToken).ConfigureAwait(false);
        int bytes = (int)(entries * 8);
        int clusters = (bytes + _clusterSize - 1) >> _clusterBits;
        long host = await AllocateClustersAsync(clusters, cancellationToken).ConfigureAwait(false);
        await WriteDirtyAsync(_refCache, cancellationToken).ConfigureAwait(false);
        byte[] l1 = new byte[bytes];
        _l1.CopyTo(l1, 0);
        await _file.WriteAsync(host, l1, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);

        byte[] pointer = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(pointer, (uint)entries);
        BinaryPrimitives.WriteUInt64BigEndian(pointer.AsSpan(4), (ulong)host);
        await _file.WriteAsync(36, pointer, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);

        long oldOffset = _header.L1TableOffset;
        int oldClusters = (_l1.Length + _clusterSize - 1) >> _clusterBits;
        _l1 = l1;
        _header.L1Size = (int)entries;
        _header.L1TableOffset = host;
        if (oldOffset != 0)
        {
            await DropReferencesNowAsync(oldOffset >> _clusterBits, oldClusters, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async ValueTask<(long Size, string Format)> ProbeBackingAsync(string imagePath, string backingFile, string? format, CancellationToken cancellationToken)
    {
        string path = Path.IsPathRooted(backingFile) ? backingFile
            : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(imagePath)) ?? ".", backingFile);
        FileNode file = await FileNode.OpenAsync("backing-probe", path, readOnly: true, cancellationToken).ConfigureAwait(false);
        await using (file.ConfigureAwait(false))
        {
            byte[] magic = new byte[4];
            if (file.Size >= 4)
            {
                await file.ReadAsync(0, magic, cancellationToken).ConfigureAwait(false);
            }

            format ??= BinaryPrimitives.ReadUInt32BigEndian(magic) == Qcow2Header.Magic ? "qcow2" : "raw";
            switch (format)
            {
                case "qcow2":
                    Qcow2Node node = await OpenAsync("backing-probe", file, readOnly: true, cancellationToken).ConfigureAwait(false);
                    await using (node.ConfigureAwait(false))
                    {
                        return (node.Size, format);
                    }

                case "raw":
                    return (file.Size, format);
                default:
                    throw new ArgumentException($"Unknown backing format '{format}'", nameof(format));
            }
        }
    }
}
