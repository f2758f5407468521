using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>
/// <c>qemu-img convert</c>'s copy loop: walks the source chain's block status, skips extents that read as zeroes,
/// reads the rest in large requests with several in flight, and writes only the non-zero granules to a
/// zero-initialised target, in offset order. Buffers are allocated once per conversion.
/// </summary>
internal static class ImageConvert
{
    /// <summary>The largest request (a multiple of every qcow2 cluster size).</summary>
    internal const int ChunkSize = 4 << 20;

    /// <summary>How many reads may be in flight while the oldest one is written.</summary>
    internal const int ReadAhead = 4;

    /// <summary>
    /// <c>qemu-img convert [-f FMT] -O FMT [-o ...] SRC DST</c>: opens <paramref name="source"/> with its backing chain
    /// read-only, creates <paramref name="destination"/> afresh and copies the guest contents.
    /// </summary>
    /// <exception cref="ImageToolException">Unknown output format, an unsupported option, or the output is one of the inputs.</exception>
    public static async Task ConvertFileAsync(string source, string? sourceFormat, string destination, string outputFormat,
        ImageOptionString options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(options);
        if (outputFormat is not ("qcow2" or "raw"))
        {
            throw new ImageToolException($"Unknown file format '{outputFormat}' (jobctl writes raw and qcow2 images)");
        }

        if (options.BackingFile is not null || options.BackingFormat is not null)
        {
            throw new ImageToolException("jobctl img convert writes standalone images: backing_file/backing_fmt are not supported");
        }

        if (outputFormat == "raw" && options.ClusterSize is not null)
        {
            throw new ImageToolException("Invalid parameter 'cluster_size' for file format 'raw'");
        }

        await using var chain = await ImageChain.OpenAsync(source, sourceFormat, readOnly: true, withBacking: true, cancellationToken).ConfigureAwait(false);
        var output = Path.GetFullPath(destination);
        if (chain.Layers.Any(l => Path.GetFullPath(l.Filename) == output))
        {
            throw new ImageToolException($"Output file '{destination}' is one of the input images");
        }

        var size = chain.Top.Size;
        await using ConvertTarget target = outputFormat == "qcow2"
            ? Qcow2ConvertTarget.Create(destination, size, options.ClusterSize ?? 65536)
            : RawConvertTarget.Create(destination, size);
        await ConvertAsync(chain.Top, target, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Copies the guest contents of <paramref name="source"/> (with its backing chain) to <paramref name="target"/> and completes it.</summary>
    public static async Task ConvertAsync(BlockNode source, ConvertTarget target, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        var size = source.Size;
        var granularity = target.Granularity;
        var free = new Stack<byte[]>(ReadAhead + 1);
        for (var i = 0; i <= ReadAhead; i++)
        {
            free.Push(GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: true));
        }

        var pending = new Queue<PendingRead>();
        try
        {
            long offset = 0;
            while (offset < size || pending.Count > 0)
            {
                if (offset < size && pending.Count < ReadAhead)
                {
                    var (start, length) = target.ZeroInitialized
                        ? await NextDataSpanAsync(source, offset, granularity, cancellationToken).ConfigureAwait(false)
                        : (offset, (int)Math.Min(ChunkSize, size - offset));
                    if (length > 0)
                    {
                        var buffer = free.Pop();
                        var read = source.ReadAsync(start, buffer.AsMemory(0, length), cancellationToken).AsTask();
                        pending.Enqueue(new PendingRead(start, length, buffer, read));
                    }

                    offset = start + length;
                    continue;
                }

                var oldest = pending.Dequeue();
                await oldest.Read.ConfigureAwait(false);
                await WriteNonZeroAsync(target, oldest.Offset, oldest.Buffer.AsMemory(0, oldest.Length), cancellationToken).ConfigureAwait(false);
                free.Push(oldest.Buffer);
            }
        }
        finally
        {
            // Let reads still in flight finish before their buffers go away (their errors are already reported).
            foreach (var p in pending)
            {
                try
                {
                    await p.Read.ConfigureAwait(false);
                }
#pragma warning disable CA1031 // the first failure is the one being propagated
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }
        }

        await target.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Finds the next span at or after <paramref name="offset"/> that does not read as zeroes: its start is aligned
    /// down to <paramref name="granularity"/>, its end aligned up (or the image end), and it is at most
    /// <see cref="ChunkSize"/> long. Returns length 0 (start = image size) when only zeroes remain.
    /// </summary>
    private static async ValueTask<(long Start, int Length)> NextDataSpanAsync(
        BlockNode source, long offset, int granularity, CancellationToken cancellationToken)
    {
        var size = source.Size;
        while (offset < size)
        {
            var extent = await ChainStatus.GetAsync(source, offset, Math.Min(ChunkSize, size - offset), cancellationToken).ConfigureAwait(false);
            if (extent.Zero)
            {
                offset += extent.Length;
                continue;
            }

            var start = offset - (offset % granularity);
            var limit = Math.Min(start + ChunkSize, size);
            var end = offset + extent.Length;
            while (end < limit)
            {
                var next = await ChainStatus.GetAsync(source, end, limit - end, cancellationToken).ConfigureAwait(false);
                if (next.Zero)
                {
                    break;
                }

                end += next.Length;
            }

            end = Math.Min(Math.Min(end + granularity - 1 - ((end + granularity - 1) % granularity), limit), size);
            return (start, (int)(end - start));
        }

        return (size, 0);
    }

    /// <summary>Writes the runs of granules of <paramref name="data"/> that are not all zeroes.</summary>
    private static async ValueTask WriteNonZeroAsync(ConvertTarget target, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (!target.ZeroInitialized)
        {
            await target.WriteAsync(offset, data, cancellationToken).ConfigureAwait(false);
            return;
        }

        var granularity = target.Granularity;
        var position = 0;
        while (position < data.Length)
        {
            var runStart = position;
            while (runStart < data.Length && IsZero(data.Span, runStart, granularity))
            {
                runStart += granularity;
            }

            var runEnd = runStart;
            while (runEnd < data.Length && !IsZero(data.Span, runEnd, granularity))
            {
                runEnd += granularity;
            }

            runEnd = Math.Min(runEnd, data.Length);
            if (runEnd > runStart)
            {
                await target.WriteAsync(offset + runStart, data[runStart..runEnd], cancellationToken).ConfigureAwait(false);
            }

            position = Math.Max(runEnd, runStart);
        }
    }

    private static bool IsZero(ReadOnlySpan<byte> data, int start, int granularity) =>
        data.Slice(start, Math.Min(granularity, data.Length - start)).IndexOfAnyExcept((byte)0) < 0;

    private readonly record struct PendingRead(long Offset, int Length, byte[] Buffer, Task Read);
}
