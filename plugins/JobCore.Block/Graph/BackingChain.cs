using System.Buffers;
using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>An extent's allocation relative to a base (<see cref="BackingChain.IsAllocatedAboveAsync"/>).</summary>
/// <param name="Offset">Start of the extent in bytes.</param>
/// <param name="Length">Length of the extent in bytes, all with the same answer (0 only past the end of the top).</param>
/// <param name="Allocated">Some layer from the top down to (excluding) the base has the extent allocated.</param>
/// <param name="Zero">The allocated extent reads as zeroes without stored data (a zero cluster, or past the end of a
/// shorter layer); only <see cref="BackingChain.StatusAboveAsync"/> reports it, and only with <paramref name="Allocated"/>.</param>
public readonly record struct AllocationExtent(long Offset, long Length, bool Allocated, bool Zero = false);

/// <summary>
/// Helpers over a backing chain: a node, its backing node, that one's backing node, ... Filters (blkdebug,
/// mirror_top, ...) are transparent: the chain continues through their child, as QEMU's
/// <c>bdrv_filter_or_cow_bs</c> does.
/// </summary>
public static class BackingChain
{
    // The largest single copy of copy-on-read (QEMU bounds its bounce buffers similarly).
    private const int CopyChunk = 1 << 20;

    /// <summary>
    /// The node below <paramref name="node"/> in its chain: the child of a filter, the backing node of a format, or
    /// <see langword="null"/> at the bottom.
    /// </summary>
    /// <param name="node">A node.</param>
    public static BlockNode? Below(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return node is FilterNode filter ? filter.Child : node.Backing;
    }

    /// <summary>The first node at or below <paramref name="node"/> that is not a filter.</summary>
    /// <param name="node">A node.</param>
    public static BlockNode SkipFilters(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        while (node is FilterNode filter)
        {
            node = filter.Child;
        }

        return node;
    }

    /// <summary>The layers of the chain from <paramref name="top"/> down to the bottom, filters skipped.</summary>
    /// <param name="top">The top of the chain.</param>
    public static IEnumerable<BlockNode> Layers(BlockNode top)
    {
        ArgumentNullException.ThrowIfNull(top);
        var seen = new HashSet<BlockNode>(ReferenceEqualityComparer.Instance);
        for (BlockNode? node = SkipFilters(top); node is not null; node = node.Backing is { } b ? SkipFilters(b) : null)
        {
            if (!seen.Add(node))
            {
                throw new InvalidOperationException($"The backing chain of {top} loops back to {node}.");
            }

            yield return node;
        }
    }

    /// <summary>How many backing layers are below <paramref name="top"/> (QEMU's <c>backing_file_depth</c>).</summary>
    /// <param name="top">The top of the chain.</param>
    public static int Depth(BlockNode top) => Layers(top).Count() - 1;

    /// <summary>Whether <paramref name="node"/> is one of the layers strictly below <paramref name="top"/>.</summary>
    /// <param name="top">The top of the chain.</param>
    /// <param name="node">The node looked for (filters are skipped on both sides).</param>
    public static bool IsBelow(BlockNode top, BlockNode node)
    {
        BlockNode target = SkipFilters(node);
        return Layers(top).Skip(1).Any(layer => ReferenceEquals(layer, target));
    }

    /// <summary>The layer below <paramref name="top"/> whose node name is <paramref name="nodeName"/>, or <see langword="null"/>.</summary>
    /// <param name="top">The top of the chain.</param>
    /// <param name="nodeName">A node name.</param>
    public static BlockNode? FindByNodeName(BlockNode top, string nodeName) =>
        Layers(top).Skip(1).FirstOrDefault(layer => layer.NodeName == nodeName);

    /// <summary>
    /// The layer below <paramref name="top"/> opened from <paramref name="filename"/> (QEMU's
    /// <c>bdrv_find_backing_image</c>): a match is the layer's file name itself, the name resolved against the folder
    /// of the layer above, or the backing-file string recorded in the header of the layer above.
    /// </summary>
    /// <param name="top">The top of the chain.</param>
    /// <param name="filename">A file name as a user gives it (absolute or relative).</param>
    public static BlockNode? FindByFilename(BlockNode top, string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        BlockNode? above = null;
        foreach (BlockNode layer in Layers(top))
        {
            if (above is not null)
            {
                string? layerFile = TryGetFilename(layer);
                string? aboveFile = TryGetFilename(above);
                if (layerFile == filename ||
                    (above is Qcow2Node q && q.BackingFileName == filename) ||
                    (layerFile is not null && aboveFile is not null &&
                     SamePath(ResolveRelativeTo(aboveFile, filename), layerFile)))
                {
                    return layer;
                }
            }

            above = layer;
        }

        return null;
    }

    /// <summary>
    /// Whether the extent at <paramref name="offset"/> is allocated in any layer from <paramref name="top"/> down
    /// to, but excluding, <paramref name="base"/> (<see langword="null"/> = the whole chain), as QEMU 7.2's
    /// <c>bdrv_is_allocated_above</c> answers: the answer holds for the returned length, which each unallocated
    /// layer may shorten. A lower layer that ends before <paramref name="offset"/> counts as allocated there (its
    /// overlay reads zeroes past its end, hiding the layers below). When <paramref name="offset"/> is at or past the
    /// end of <paramref name="top"/> the answer is unallocated with length 0 (stream: nothing left to copy).
    /// </summary>
    /// <param name="top">The top of the chain.</param>
    /// <param name="base">The first layer not asked, or <see langword="null"/>.</param>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Longest extent wanted (&gt; 0).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public static async ValueTask<AllocationExtent> IsAllocatedAboveAsync(
        BlockNode top, BlockNode? @base, long offset, long length, CancellationToken cancellationToken = default) =>
        (await StatusAboveAsync(top, @base, offset, length, cancellationToken).ConfigureAwait(false)) with { Zero = false };

    /// <summary>
    /// <see cref="IsAllocatedAboveAsync"/> plus the zero flag of the layer that has the extent allocated (QEMU's
    /// <c>bdrv_co_common_block_status_above</c> down to the base's overlay, as commit asks it since QEMU 10.0): an
    /// allocated extent with <see cref="AllocationExtent.Zero"/> reads as zeroes and needs no data read to copy.
    /// </summary>
    /// <param name="top">The top of the chain.</param>
    /// <param name="base">The first layer not asked, or <see langword="null"/>.</param>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Longest extent wanted (&gt; 0).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public static async ValueTask<AllocationExtent> StatusAboveAsync(
        BlockNode top, BlockNode? @base, long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        BlockNode topLayer = SkipFilters(top);
        if (offset >= topLayer.Size)
        {
            return new AllocationExtent(offset, 0, false);
        }

        BlockNode? stop = @base is null ? null : SkipFilters(@base);
        long unallocated = Math.Min(length, topLayer.Size - offset);
        foreach (BlockNode layer in Layers(topLayer))
        {
            if (ReferenceEquals(layer, stop))
            {
                break;
            }

            long layerSize = layer.Size;
            if (offset >= layerSize)
            {
                return new AllocationExtent(offset, unallocated, true, Zero: true);
            }

            BlockStatus status = await layer.GetBlockStatusAsync(offset, Math.Min(unallocated, layerSize - offset), cancellationToken).ConfigureAwait(false);
            if (status.Length <= 0)
            {
                throw new InvalidOperationException($"{layer} reported an empty block status extent at {offset}.");
            }

            if (status.Allocated)
            {
                return new AllocationExtent(offset, Math.Min(status.Length, unallocated), true, status.Zero);
            }

            unallocated = Math.Min(unallocated, status.Length);
        }

        return new AllocationExtent(offset, unallocated, false);
    }

    /// <summary>
    /// Copy-on-read for stream: every part of [<paramref name="offset"/>, +<paramref name="length"/>) that is not
    /// allocated in <paramref name="top"/> but is allocated somewhere between <paramref name="top"/>'s backing and
    /// <paramref name="base"/> (excluded) is read through <paramref name="top"/> and written into it (all-zero data
    /// as write-zeroes). Afterwards that range reads the same from <paramref name="top"/> without the layers above
    /// <paramref name="base"/>.
    /// </summary>
    /// <param name="top">The node receiving the data (must be writable).</param>
    /// <param name="base">The first layer whose data is not copied, or <see langword="null"/> for the whole chain.</param>
    /// <param name="offset">Start in bytes.</param>
    /// <param name="length">Length in bytes (clipped at the end of <paramref name="top"/>).</param>
    /// <param name="cancellationToken">Cancels between requests.</param>
    /// <returns>How many bytes were copied into <paramref name="top"/>.</returns>
    /// <exception cref="BlockIOException">A read or write failed.</exception>
    public static async ValueTask<long> CopyOnReadAsync(
        BlockNode top, BlockNode? @base, long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long end = Math.Min(offset + length, top.Size);
        BlockNode topLayer = SkipFilters(top);
        BlockNode? below = topLayer.Backing;
        long copied = 0;
        byte[]? buffer = null;
        try
        {
            for (long at = offset; at < end;)
            {
                BlockStatus own = await topLayer.GetBlockStatusAsync(at, end - at, cancellationToken).ConfigureAwait(false);
                long run = Math.Min(own.Length, end - at);
                if (own.Allocated || below is null || (@base is not null && ReferenceEquals(SkipFilters(below), SkipFilters(@base))))
                {
                    at += run;
                    continue;
                }

                AllocationExtent extent = await IsAllocatedAboveAsync(below, @base, at, run, cancellationToken).ConfigureAwait(false);
                if (extent.Length == 0)
                {
                    // The backing chain ends before this offset: nothing below can show through any more.
                    break;
                }

                if (!extent.Allocated)
                {
                    at += extent.Length;
                    continue;
                }

                buffer ??= ArrayPool<byte>.Shared.Rent(CopyChunk);
                Memory<byte> data = buffer.AsMemory(0, (int)Math.Min(extent.Length, CopyChunk));
                await top.ReadAsync(at, data, cancellationToken).ConfigureAwait(false);
                if (!data.Span.ContainsAnyExcept((byte)0))
                {
                    await top.WriteZeroesAsync(at, data.Length, mayUnmap: false, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await top.WriteAsync(at, data, cancellationToken).ConfigureAwait(false);
                }

                copied += data.Length;
                at += data.Length;
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        return copied;
    }

    /// <summary>
    /// The host file name behind <paramref name="node"/> (QEMU's <c>filename</c>): a file node's path, else the
    /// file name of the node's <see cref="BlockNode.File"/> child; <see langword="null"/> when there is none.
    /// </summary>
    /// <param name="node">A node.</param>
    public static string? TryGetFilename(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        for (BlockNode? n = node; n is not null; n = n.File)
        {
            if (n is FileNode file)
            {
                return file.Filename;
            }
        }

        return null;
    }

    /// <summary>
    /// The format name recorded as backing format when <paramref name="node"/> becomes a backing node: the driver
    /// of the first non-filter node (<c>qcow2</c>, <c>raw</c>, or <c>file</c> for a bare protocol node).
    /// </summary>
    /// <param name="node">A node.</param>
    public static string GetFormatName(BlockNode node) => SkipFilters(node).DriverName;

    /// <summary>
    /// QEMU's <c>path_combine</c>: a relative <paramref name="path"/> is taken relative to the folder of
    /// <paramref name="imageFilename"/> by plain string joining (no normalisation, and relative stays relative when
    /// the image name is relative), so the names the graph shows and records are the ones QEMU would.
    /// </summary>
    /// <param name="imageFilename">The file name of the image that names <paramref name="path"/>.</param>
    /// <param name="path">An absolute or relative path.</param>
    public static string ResolveRelativeTo(string imageFilename, string path)
    {
        ArgumentNullException.ThrowIfNull(imageFilename);
        ArgumentNullException.ThrowIfNull(path);
        if (path.StartsWith('/') || path.Contains("://", StringComparison.Ordinal))
        {
            return path;
        }

        int slash = imageFilename.LastIndexOf('/');
        return slash < 0 ? path : string.Concat(imageFilename.AsSpan(0, slash + 1), path);
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a), Path.GetFullPath(b), StringComparison.Ordinal);
}
