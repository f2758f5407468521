using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>
/// The status of an extent of a whole backing chain, as <c>qemu-img map</c> reports it.
/// </summary>
/// <param name="Start">Guest offset of the extent.</param>
/// <param name="Length">Length in bytes (&gt; 0).</param>
/// <param name="Depth">How many backing links below the top the deciding layer is (unallocated: the bottom layer).</param>
/// <param name="Present">Some layer of the chain has the extent allocated.</param>
/// <param name="Zero">The extent reads as zeroes.</param>
/// <param name="Data">The deciding layer stores data for the extent.</param>
/// <param name="Offset">Host offset of the data in the deciding layer's file, when the driver reports one.</param>
/// <param name="Layer">The deciding layer.</param>
internal readonly record struct ChainExtent(
    long Start, long Length, int Depth, bool Present, bool Zero, bool Data, long? Offset, BlockNode Layer);

/// <summary>
/// Walks a backing chain for one extent the way qemu-img's <c>get_block_status</c> does: the first layer that has
/// the extent allocated decides; an extent unallocated everywhere reads as zeroes (so does one that lies past the
/// end of a shorter backing node).
/// </summary>
internal static class ChainStatus
{
    /// <summary>Returns the status of the extent starting at <paramref name="offset"/>, at most <paramref name="length"/> bytes long.</summary>
    public static async ValueTask<ChainExtent> GetAsync(BlockNode top, long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var node = top;
        var depth = 0;
        while (true)
        {
            var status = await node.GetBlockStatusAsync(offset, length, cancellationToken).ConfigureAwait(false);
            if (status.Length <= 0 || status.Offset != offset)
            {
                throw new InvalidOperationException(
                    $"{node} reported a block status extent at {status.Offset}+{status.Length} for a query at {offset}.");
            }

            length = Math.Min(length, status.Length);

            // Drivers without a backing chain (raw, file) have every extent allocated: holes are allocated zeroes.
            var allocated = status.Allocated || !SupportsBacking(node);
            if (allocated)
            {
                return new ChainExtent(offset, length, depth, true, status.Zero, status.Data,
                    HostOffset(node, status), node);
            }

            var backing = node.Backing;
            if (backing is null || offset >= backing.Size)
            {
                return new ChainExtent(offset, length, depth, false, true, false, null, node);
            }

            length = Math.Min(length, backing.Size - offset);
            node = backing;
            depth++;
        }
    }

    private static bool SupportsBacking(BlockNode node) => node.DriverName == "qcow2";

    /// <summary>
    /// The host offset of an allocated extent: what the driver reports (qcow2: normal and preallocated zero clusters);
    /// raw images map one to one onto their file (holes included, as in qemu-img).
    /// </summary>
    private static long? HostOffset(BlockNode node, BlockStatus status) =>
        status.HostOffset ?? (node.DriverName is "raw" or "file" ? status.Offset : null);
}

/// <summary>
/// Walks one chain forwards and remembers the last extent it got: a copy loop asks about the whole rest of the
/// image but consumes the answer chunk by chunk, so later chunks of the same extent are answered from memory instead
/// of asking the drivers again (which would rescan the mapping tables from the chunk to the image end every time).
/// Only for images nobody writes while the cursor is in use.
/// </summary>
internal sealed class ChainStatusCursor(BlockNode top)
{
    private ChainExtent _last;
    private bool _valid;

    /// <summary>The status of the extent starting at <paramref name="offset"/>, at most <paramref name="length"/> bytes long.</summary>
    public async ValueTask<ChainExtent> GetAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (_valid && offset >= _last.Start && offset < _last.Start + _last.Length)
        {
            var skip = offset - _last.Start;
            return _last with
            {
                Start = offset,
                Length = Math.Min(length, _last.Length - skip),
                Offset = _last.Offset + skip,
            };
        }

        _last = await ChainStatus.GetAsync(top, offset, length, cancellationToken).ConfigureAwait(false);
        _valid = true;
        return _last;
    }
}
