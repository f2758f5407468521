using System.Numerics;

namespace JobCore.Block.Bitmaps;

/// <summary>A run of bytes found by <see cref="DirtyBitmap.NextDirty"/>: <paramref name="Offset"/> and <paramref name="Length"/> in bytes.</summary>
/// <param name="Offset">Start of the run (a multiple of the granularity).</param>
/// <param name="Length">Length of the run (&gt; 0; ends at a granularity boundary or at the bitmap's size).</param>
public readonly record struct DirtyRun(long Offset, long Length)
{
    /// <summary>The first byte after the run.</summary>
    public long End => Offset + Length;
}

/// <summary>
/// A dirty bitmap over a node's bytes (QEMU's <c>BdrvDirtyBitmap</c>): one bit per <see cref="Granularity"/> bytes.
/// Marking rounds outwards (touching one byte of a chunk makes the whole chunk dirty); clearing rounds inwards
/// (only chunks entirely covered are cleared; the range's end at <see cref="Size"/> covers the last partial chunk),
/// so a clear never loses a write that only partly overlaps it. Thread-safe: every member takes one lock.
/// </summary>
public sealed class DirtyBitmap
{
    private const int MinGranularity = 512;
    private readonly Lock _lock = new();
    private ulong[] _words;
    private long _bitCount;
    private long _setBits;
    private long _size;

    /// <summary>Creates an all-clean bitmap.</summary>
    /// <param name="size">The covered size in bytes (≥ 0), normally the node's size.</param>
    /// <param name="granularity">Bytes per bit: a power of two ≥ 512.</param>
    /// <exception cref="ArgumentOutOfRangeException">A negative size or a bad granularity.</exception>
    public DirtyBitmap(long size, long granularity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        if (granularity < MinGranularity || !BitOperations.IsPow2(granularity))
        {
            throw new ArgumentOutOfRangeException(nameof(granularity), granularity,
                "Granularity must be a power of two of at least 512 bytes.");
        }

        Granularity = granularity;
        GranularityShift = BitOperations.Log2((ulong)granularity);
        _size = size;
        _bitCount = BitsFor(size);
        _words = new ulong[WordsFor(_bitCount)];
    }

    /// <summary>Bytes per bit (a power of two ≥ 512).</summary>
    public long Granularity { get; }

    private int GranularityShift { get; }

    /// <summary>The covered size in bytes.</summary>
    public long Size
    {
        get { lock (_lock) { return _size; } }
    }

    /// <summary>
    /// The number of dirty bytes (whole chunks, the last chunk counted only up to <see cref="Size"/>), as
    /// mirror uses for its remaining work.
    /// </summary>
    public long Count
    {
        get
        {
            lock (_lock)
            {
                return DirtyBytesLocked();
            }
        }
    }

    /// <summary>Whether no byte is dirty.</summary>
    public bool IsEmpty
    {
        get { lock (_lock) { return _setBits == 0; } }
    }

    /// <summary>Marks every chunk that <c>[offset, offset + length)</c> touches dirty; parts beyond <see cref="Size"/> are ignored.</summary>
    /// <param name="offset">Start in bytes (≥ 0).</param>
    /// <param name="length">Length in bytes (≥ 0).</param>
    public void SetDirty(long offset, long length)
    {
        CheckRange(offset, length);
        lock (_lock)
        {
            long end = Math.Min(offset + length, _size);
            if (offset >= end)
            {
                return;
            }

            long first = offset >> GranularityShift;
            long last = (end - 1) >> GranularityShift;
            ChangeBitsLocked(first, last + 1, set: true);
        }
    }

    /// <summary>Marks every chunk dirty.</summary>
    public void SetAll()
    {
        lock (_lock)
        {
            ChangeBitsLocked(0, _bitCount, set: true);
        }
    }

    /// <summary>
    /// Clears the chunks that <c>[offset, offset + length)</c> covers entirely (a range reaching <see cref="Size"/>
    /// also covers the last partial chunk). Partly covered chunks at the edges stay dirty.
    /// </summary>
    /// <param name="offset">Start in bytes (≥ 0).</param>
    /// <param name="length">Length in bytes (≥ 0).</param>
    public void Reset(long offset, long length)
    {
        CheckRange(offset, length);
        lock (_lock)
        {
            ResetLocked(offset, length);
        }
    }

    /// <summary>Clears every bit.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            Array.Clear(_words);
            _setBits = 0;
        }
    }

    /// <summary>Whether the chunk holding byte <paramref name="offset"/> is dirty (false beyond <see cref="Size"/>).</summary>
    /// <param name="offset">A byte offset (≥ 0).</param>
    public bool IsDirty(long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        lock (_lock)
        {
            if (offset >= _size)
            {
                return false;
            }

            long bit = offset >> GranularityShift;
            return (_words[bit >> 6] & (1UL << (int)(bit & 63))) != 0;
        }
    }

    /// <summary>
    /// Finds the first dirty run at or after <paramref name="from"/> (the chunk holding <paramref name="from"/>
    /// counts), extending over consecutive dirty chunks up to <paramref name="maxLength"/> bytes (rounded up to
    /// whole chunks) and clipped at <see cref="Size"/>.
    /// </summary>
    /// <param name="from">Byte offset to search from (≥ 0).</param>
    /// <param name="maxLength">The longest run to return, in bytes (&gt; 0).</param>
    /// <returns>The run, or <see langword="null"/> when nothing at or after <paramref name="from"/> is dirty.</returns>
    public DirtyRun? NextDirty(long from, long maxLength = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLength);
        lock (_lock)
        {
            return NextDirtyLocked(from, maxLength);
        }
    }

    /// <summary>
    /// Atomically finds the next dirty run (as <see cref="NextDirty"/>) and clears it, so a copier that takes
    /// the run owns it; a write arriving afterwards marks it again.
    /// </summary>
    /// <param name="from">Byte offset to search from (≥ 0).</param>
    /// <param name="maxLength">The longest run to take, in bytes (&gt; 0).</param>
    /// <returns>The run taken, or <see langword="null"/> when nothing at or after <paramref name="from"/> is dirty.</returns>
    public DirtyRun? TakeNextDirty(long from, long maxLength = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLength);
        lock (_lock)
        {
            DirtyRun? run = NextDirtyLocked(from, maxLength);
            if (run is { } r)
            {
                ResetLocked(r.Offset, r.Length);
            }

            return run;
        }
    }

    /// <summary>Lists every dirty run in ascending order (a snapshot).</summary>
    public IReadOnlyList<DirtyRun> GetDirtyRuns()
    {
        var runs = new List<DirtyRun>();
        lock (_lock)
        {
            long from = 0;
            while (NextDirtyLocked(from, long.MaxValue) is { } run)
            {
                runs.Add(run);
                from = run.End;
            }
        }

        return runs;
    }

    /// <summary>Changes the covered size; new chunks are clean, chunks beyond the new size are dropped.</summary>
    /// <param name="size">The new size in bytes (≥ 0).</param>
    public void Resize(long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        lock (_lock)
        {
            long bits = BitsFor(size);
            if (bits < _bitCount)
            {
                ChangeBitsLocked(bits, _bitCount, set: false);
            }

            Array.Resize(ref _words, (int)WordsFor(bits));
            _bitCount = bits;
            _size = size;
        }
    }

    private long BitsFor(long size) => (size + Granularity - 1) >> GranularityShift;

    private static long WordsFor(long bits) => (bits + 63) >> 6;

    private static void CheckRange(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > long.MaxValue - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "offset + length overflows.");
        }
    }

    private long DirtyBytesLocked()
    {
        long bytes = _setBits << GranularityShift;
        long lastBit = _bitCount - 1;
        if (lastBit >= 0 && (_words[lastBit >> 6] & (1UL << (int)(lastBit & 63))) != 0)
        {
            // The last chunk may extend past the end of the node; count only its real bytes.
            bytes -= (_bitCount << GranularityShift) - _size;
        }

        return bytes;
    }

    private void ResetLocked(long offset, long length)
    {
        long end = Math.Min(offset + length, _size);
        if (offset >= end)
        {
            return;
        }

        long first = (offset + Granularity - 1) >> GranularityShift;
        long stop = end == _size ? _bitCount : end >> GranularityShift;
        if (first < stop)
        {
            ChangeBitsLocked(first, stop, set: false);
        }
    }

    private DirtyRun? NextDirtyLocked(long from, long maxLength)
    {
        if (from >= _size)
        {
            return null;
        }

        long start = FindLocked(from >> GranularityShift, dirty: true);
        if (start < 0)
        {
            return null;
        }

        long stop = FindLocked(start, dirty: false);
        if (stop < 0)
        {
            stop = _bitCount;
        }

        long maxBits = (long)(((ulong)maxLength + (ulong)Granularity - 1) >> GranularityShift);
        stop = Math.Min(stop, start + maxBits);
        long offset = start << GranularityShift;
        long end = Math.Min(stop << GranularityShift, _size);
        return new DirtyRun(offset, end - offset);
    }

    // Index of the first bit ≥ from whose value is `dirty`, or -1.
    private long FindLocked(long from, bool dirty)
    {
        if (from >= _bitCount)
        {
            return -1;
        }

        long wordIndex = from >> 6;
        ulong word = dirty ? _words[wordIndex] : ~_words[wordIndex];
        word &= ~0UL << (int)(from & 63);
        while (true)
        {
            if (word != 0)
            {
                long bit = (wordIndex << 6) + BitOperations.TrailingZeroCount(word);
                return bit < _bitCount ? bit : -1;
            }

            wordIndex++;
            if (wordIndex >= _words.Length)
            {
                return -1;
            }

            word = dirty ? _words[wordIndex] : ~_words[wordIndex];
        }
    }

    private void ChangeBitsLocked(long first, long stop, bool set)
    {
        long bit = first;
        while (bit < stop)
        {
            long wordIndex = bit >> 6;
            int lo = (int)(bit & 63);
            int hi = (int)Math.Min(64, stop - (wordIndex << 6));
            ulong mask = (hi == 64 ? ~0UL : (1UL << hi) - 1) & (~0UL << lo);
            ulong old = _words[wordIndex];
            ulong updated = set ? old | mask : old & ~mask;
            _setBits += BitOperations.PopCount(updated) - BitOperations.PopCount(old);
            _words[wordIndex] = updated;
            bit = (wordIndex + 1) << 6;
        }
    }
}
