using System.Buffers;
using System.Globalization;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>The outcome of <see cref="ImageCompare"/>.</summary>
/// <param name="SizeWarning">
/// The images differ in size and their common part matched, so qemu-img warns before its verdict.
/// </param>
/// <param name="MismatchOffset">The 512-byte sector where the contents first differ; null when identical.</param>
internal sealed record CompareResult(bool SizeWarning, long? MismatchOffset)
{
    /// <summary>qemu-img's exit code: 0 identical, 1 different.</summary>
    public int ExitCode => MismatchOffset is null ? 0 : 1;

    /// <summary>qemu-img's report (stdout lines, each ending with a newline).</summary>
    public string Report =>
        (SizeWarning ? "Warning: Image size mismatch!\n" : "")
        + (MismatchOffset is { } o
            ? string.Create(CultureInfo.InvariantCulture, $"Content mismatch at offset {o}!\n")
            : "Images are identical.\n");
}

/// <summary>
/// <c>qemu-img compare</c>: compares the guest contents of two images (with their backing chains); the part of the
/// larger image beyond the smaller one must read as zeroes. Extents that both chains report as zero are skipped.
/// </summary>
internal static class ImageCompare
{
    private const int ChunkSize = 4 << 20;
    private const int SectorSize = 512;

    /// <summary>Compares <paramref name="first"/> with <paramref name="second"/>.</summary>
    public static async Task<CompareResult> CompareAsync(BlockNode first, BlockNode second, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        var buffer1 = ArrayPool<byte>.Shared.Rent(ChunkSize);
        var buffer2 = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            var common = Math.Min(first.Size, second.Size);
            for (long offset = 0; offset < common;)
            {
                var s1 = await ChainStatus.GetAsync(first, offset, Math.Min(ChunkSize, common - offset), cancellationToken).ConfigureAwait(false);
                var s2 = await ChainStatus.GetAsync(second, offset, s1.Length, cancellationToken).ConfigureAwait(false);
                var n = (int)Math.Min(s1.Length, s2.Length);
                if (!(s1.Zero && s2.Zero))
                {
                    var a = buffer1.AsMemory(0, n);
                    var b = buffer2.AsMemory(0, n);
                    var read1 = s1.Zero ? ClearAsync(a) : first.ReadAsync(offset, a, cancellationToken);
                    var read2 = s2.Zero ? ClearAsync(b) : second.ReadAsync(offset, b, cancellationToken);
                    await read1.ConfigureAwait(false);
                    await read2.ConfigureAwait(false);
                    var diff = a.Span.CommonPrefixLength(b.Span);
                    if (diff < n)
                    {
                        return new CompareResult(false, offset + (diff / SectorSize * SectorSize));
                    }
                }

                offset += n;
            }

            if (first.Size == second.Size)
            {
                return new CompareResult(false, null);
            }

            var larger = first.Size > second.Size ? first : second;
            for (long offset = common; offset < larger.Size;)
            {
                var s = await ChainStatus.GetAsync(larger, offset, Math.Min(ChunkSize, larger.Size - offset), cancellationToken).ConfigureAwait(false);
                var n = (int)s.Length;
                if (!s.Zero)
                {
                    var a = buffer1.AsMemory(0, n);
                    await larger.ReadAsync(offset, a, cancellationToken).ConfigureAwait(false);
                    var nonZero = a.Span.IndexOfAnyExcept((byte)0);
                    if (nonZero >= 0)
                    {
                        return new CompareResult(true, offset + (nonZero / SectorSize * SectorSize));
                    }
                }

                offset += n;
            }

            return new CompareResult(true, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer1);
            ArrayPool<byte>.Shared.Return(buffer2);
        }
    }

    private static ValueTask ClearAsync(Memory<byte> buffer)
    {
        buffer.Span.Clear();
        return ValueTask.CompletedTask;
    }
}
