using System.Runtime.InteropServices;

namespace JobCore.Block.Tools;

/// <summary>
/// A fixed set of large buffers and a first-in-first-out queue of reads in flight into them: callers start reads
/// while buffers are free and take the results in the order started. Buffers are allocated once (pinned, never
/// cleared, page aligned) so a copy loop does not allocate per chunk.
/// </summary>
internal sealed class ReadAhead
{
    /// <summary>
    /// Buffers start on a page boundary: the kernel copies between the page cache and a user buffer much faster
    /// when both are aligned (a byte[]'s data is only 8-byte aligned, which doubles the CPU time of pread/pwrite).
    /// </summary>
    internal const int Alignment = 4096;

    private readonly Stack<Memory<byte>> _free;
    private readonly Queue<Slot> _pending = new();

    /// <summary>Allocates <paramref name="buffers"/> buffers of <paramref name="bufferSize"/> bytes.</summary>
    public ReadAhead(int buffers, int bufferSize)
    {
        _free = new Stack<Memory<byte>>(buffers);
        for (var i = 0; i < buffers; i++)
        {
            _free.Push(AllocateAligned(bufferSize));
        }
    }

    /// <summary>A page-aligned buffer of <paramref name="size"/> bytes: a slice of a pinned (never moved) array.</summary>
    internal static Memory<byte> AllocateAligned(int size)
    {
        var array = GC.AllocateUninitializedArray<byte>(size + Alignment, pinned: true);
        var address = (long)Marshal.UnsafeAddrOfPinnedArrayElement(array, 0);
        var skip = (int)((Alignment - (address % Alignment)) % Alignment);
        return array.AsMemory(skip, size);
    }

    /// <summary>One read: where it came from and the buffer holding it.</summary>
    /// <param name="Offset">The offset read.</param>
    /// <param name="Buffer">The whole buffer (hand it back with <see cref="Return"/>).</param>
    /// <param name="Length">How many bytes were read into <paramref name="Buffer"/>.</param>
    /// <param name="Read">The read in flight.</param>
    internal readonly record struct Slot(long Offset, Memory<byte> Buffer, int Length, Task Read)
    {
        /// <summary>The bytes read.</summary>
        public Memory<byte> Data => Buffer[..Length];
    }

    /// <summary>Reads in flight (started, not yet taken).</summary>
    public int Pending => _pending.Count;

    /// <summary>Whether a buffer is free for <see cref="Start"/>.</summary>
    public bool HasFreeBuffer => _free.Count > 0;

    /// <summary>Starts <paramref name="read"/> into a free buffer for <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public void Start(long offset, int length, Func<Memory<byte>, ValueTask> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        var buffer = _free.Pop();
        _pending.Enqueue(new Slot(offset, buffer, length, read(buffer[..length]).AsTask()));
    }

    /// <summary>Waits for the oldest read and returns it; its buffer stays taken until <see cref="Return"/>.</summary>
    public async ValueTask<Slot> NextAsync()
    {
        var slot = _pending.Dequeue();
        try
        {
            await slot.Read.ConfigureAwait(false);
        }
        catch
        {
            _free.Push(slot.Buffer);
            throw;
        }

        return slot;
    }

    /// <summary>Hands a taken buffer back.</summary>
    public void Return(Slot slot) => _free.Push(slot.Buffer);

    /// <summary>Waits for reads still in flight (after a failure) so no read lands in a buffer being dropped.</summary>
    public async ValueTask DrainAsync()
    {
        while (_pending.TryDequeue(out var slot))
        {
            try
            {
                await slot.Read.ConfigureAwait(false);
            }
#pragma warning disable CA1031 // the failure that stopped the copy is the one being reported
            catch (Exception)
#pragma warning restore CA1031
            {
            }

            _free.Push(slot.Buffer);
        }
    }
}
