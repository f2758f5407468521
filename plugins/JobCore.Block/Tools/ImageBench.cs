using System.Globalization;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>
/// One <c>qemu-img bench</c> run: <see cref="Count"/> requests of <see cref="BufferSize"/> bytes, <see cref="Depth"/>
/// in flight, the first at <see cref="Offset"/> and each next one <see cref="StepSize"/> further, wrapping at the
/// image end (as qemu-img does: request k ≥ 1 goes to (offset + k·step) mod size).
/// </summary>
/// <param name="Write">Write requests (the buffers hold <see cref="Pattern"/>) instead of reads.</param>
/// <param name="Count">How many requests.</param>
/// <param name="Depth">How many requests are in flight at once (at least 1).</param>
/// <param name="Offset">The offset of the first request.</param>
/// <param name="BufferSize">The length of every request.</param>
/// <param name="StepSize">The distance between consecutive requests.</param>
/// <param name="Pattern">The byte written by write requests.</param>
internal sealed record ImageBenchRequest(bool Write, int Count, int Depth, long Offset, int BufferSize, int StepSize, byte Pattern)
{
    /// <summary>qemu-img bench's defaults: 75000 requests, 64 in parallel, 4 KiB each.</summary>
    public const int DefaultCount = 75000;

    /// <inheritdoc cref="DefaultCount"/>
    public const int DefaultDepth = 64;

    /// <inheritdoc cref="DefaultCount"/>
    public const int DefaultBufferSize = 4096;

    private const string SuffixHelp = "You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.";

    /// <summary>
    /// Builds a request from qemu-img bench's option texts (null = not given), with qemu-img's error messages.
    /// </summary>
    /// <exception cref="ImageToolException">An option is not a number, is out of range, or names an unknown cache mode.</exception>
    public static ImageBenchRequest Parse(bool write, string? count, string? depth, string? offset, string? bufferSize, string? stepSize, string? pattern)
    {
        var c = count is null ? DefaultCount : ParseInteger(count, 0, "Invalid request count specified");
        // qemu-img accepts -d 0 and then waits forever for a request that is never sent; jobctl refuses it.
        var d = depth is null ? DefaultDepth : ParseInteger(depth, 1, "Invalid queue depth specified");
        var o = offset is null ? 0 : ParseSize(offset, "offset", long.MaxValue);
        var s = bufferSize is null ? DefaultBufferSize : (int)ParseSize(bufferSize, "buffer size", int.MaxValue);
        var step = stepSize is null ? 0 : (int)ParseSize(stepSize, "step_size", int.MaxValue);
        var p = pattern is null ? 0 : ParseInteger(pattern, 0, "Invalid pattern byte specified");
        if (p > byte.MaxValue)
        {
            throw new ImageToolException("Invalid pattern byte specified");
        }

        return new ImageBenchRequest(write, c, d, o, s, step == 0 ? s : step, (byte)p);
    }

    /// <summary>The line printed before the run (qemu-img's text).</summary>
    public string Header => string.Create(CultureInfo.InvariantCulture,
        $"Sending {Count} {(Write ? "write" : "read")} requests, {BufferSize} bytes each, {Depth} in parallel (starting at offset {Offset}, step size {StepSize})\n");

    /// <summary>The line printed after the run (qemu-img's text, milliseconds resolution).</summary>
    public static string Footer(TimeSpan elapsed) =>
        string.Create(CultureInfo.InvariantCulture, $"Run completed in {elapsed.TotalSeconds:0.000} seconds.\n");

    /// <summary>The offset of request <paramref name="index"/> on an image of <paramref name="imageSize"/> bytes.</summary>
    public long OffsetOf(long index, long imageSize) =>
        index == 0 ? Offset : imageSize == 0 ? 0 : (long)(((UInt128)(ulong)Offset + ((UInt128)(ulong)index * (ulong)StepSize)) % (ulong)imageSize);

    /// <summary>C's <c>strtol</c> with base 0 over the whole text (<c>0x</c> hex, leading <c>0</c> octal), as an int ≥ <paramref name="min"/>.</summary>
    private static int ParseInteger(string text, int min, string error)
    {
        var s = text.Trim();
        var negative = s.StartsWith('-');
        if (negative || s.StartsWith('+'))
        {
            s = s[1..];
        }

        var (digits, radix) = s.Length > 2 && (s.StartsWith("0x", StringComparison.Ordinal) || s.StartsWith("0X", StringComparison.Ordinal))
            ? (s[2..], 16)
            : s.Length > 1 && s[0] == '0' ? (s[1..], 8) : (s, 10);
        if (digits.Length == 0)
        {
            throw new ImageToolException(error);
        }

        long value = 0;
        foreach (var ch in digits)
        {
            var digit = char.IsAsciiDigit(ch) ? ch - '0' : char.IsAsciiLetter(ch) ? char.ToLowerInvariant(ch) - 'a' + 10 : radix;
            if (digit >= radix)
            {
                throw new ImageToolException(error);
            }

            value = (value * radix) + digit;
            if (value > int.MaxValue + 1L)
            {
                throw new ImageToolException(error);
            }
        }

        value = negative ? -value : value;
        if (value < min || value > int.MaxValue)
        {
            throw new ImageToolException(error);
        }

        return (int)value;
    }

    private static long ParseSize(string text, string what, long max)
    {
        long value;
        try
        {
            value = ImageSize.Parse(text);
        }
        catch (ImageToolException e)
        {
            throw new ImageToolException($"Invalid {what} specified. {SuffixHelp}", e);
        }

        if (value > max)
        {
            throw new ImageToolException(string.Create(CultureInfo.InvariantCulture, $"Invalid {what} specified. Must be between 0 and {max}."));
        }

        return value;
    }
}

/// <summary>
/// <c>qemu-img bench</c>'s loop: keeps <see cref="ImageBenchRequest.Depth"/> requests in flight against one node
/// until <see cref="ImageBenchRequest.Count"/> are done. Each request slot owns a page-aligned buffer (filled with
/// the pattern for writes), so the loop allocates nothing per request; the first failure stops the run.
/// </summary>
internal static class ImageBench
{
    /// <summary>The cache modes of qemu-img, and the one jobctl implements (no O_DIRECT, no flush suppression).</summary>
    private static readonly string[] CacheModes = ["none", "writeback", "unsafe", "directsync", "writethrough"];

    /// <summary>
    /// Checks <c>-t</c> and <c>-n</c> as qemu-img would, then refuses what jobctl does not implement.
    /// </summary>
    /// <exception cref="ImageToolException">An unknown or unsupported cache mode, or native AIO without O_DIRECT.</exception>
    public static void CheckCacheMode(string? cache, bool nativeAio, string filename)
    {
        var mode = cache ?? "writeback";
        if (!CacheModes.Contains(mode))
        {
            throw new ImageToolException("Invalid cache mode");
        }

        if (nativeAio && mode is not ("none" or "directsync"))
        {
            throw new ImageToolException($"Could not open '{filename}': aio=native was specified, but it requires cache.direct=on, which was not specified.");
        }

        if (mode != "writeback")
        {
            throw new ImageToolException(
                $"Cache mode '{mode}' is not supported by jobctl img bench: only writeback (page cache, flushed at the end of a write run; no O_DIRECT)");
        }
    }

    /// <summary>
    /// Runs <paramref name="request"/> against <paramref name="node"/> and returns the time the requests took (a write
    /// run's final flush, which qemu-img does when it closes the image, is not included).
    /// </summary>
    /// <exception cref="ImageToolException">A request failed (past the image end: qemu-img's "Input/output error").</exception>
    public static async Task<TimeSpan> RunAsync(BlockNode node, ImageBenchRequest request, TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(request);
        var time = timeProvider ?? TimeProvider.System;
        var size = node.Size;
        long next = -1;
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // A write run starts the host's write-back as it goes (as qemu-img's qcow2 driver does with the flushes its
        // metadata updates need), so the flush at the end does not find the whole run still dirty in the page cache.
        using var writeback = request.Write ? HostWriteback.For(node) : null;
        var start = time.GetTimestamp();
        var workers = new Task[Math.Min(request.Depth, Math.Max(request.Count, 1))];
        for (var i = 0; i < workers.Length; i++)
        {
            var buffer = ReadAhead.AllocateAligned(request.BufferSize);
            if (request.Write)
            {
                buffer.Span.Fill(request.Pattern);
            }

            workers[i] = Task.Run(() => RunSlotAsync(node, request, size, buffer, () => Interlocked.Increment(ref next), writeback, failed), failed.Token);
        }

        // Slots stopped by a sibling's failure end cancelled, so the failure is what WhenAll reports.
        await Task.WhenAll(workers).ConfigureAwait(false);
        var elapsed = time.GetElapsedTime(start);
        if (request.Write)
        {
            await node.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        return elapsed;
    }

    private static async Task RunSlotAsync(BlockNode node, ImageBenchRequest request, long size, Memory<byte> buffer, Func<long> claim,
        HostWriteback? writeback, CancellationTokenSource failed)
    {
        try
        {
            for (var index = claim(); index < request.Count; index = claim())
            {
                failed.Token.ThrowIfCancellationRequested();
                var offset = request.OffsetOf(index, size);
                if (offset > size - buffer.Length)
                {
                    throw new ImageToolException("Failed request: Input/output error");
                }

                if (request.Write)
                {
                    await node.WriteAsync(offset, buffer, failed.Token).ConfigureAwait(false);
                    if (writeback is not null)
                    {
                        // The byte counter is not thread-safe; the slots take turns.
                        lock (writeback)
                        {
                            writeback.Written(buffer.Length);
                        }
                    }
                }
                else
                {
                    await node.ReadAsync(offset, buffer, failed.Token).ConfigureAwait(false);
                }
            }
        }
        catch (BlockIOException e)
        {
            await failed.CancelAsync().ConfigureAwait(false);
            throw new ImageToolException("Failed request: " + e.Message, e);
        }
        catch (ImageToolException)
        {
            await failed.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }
}
