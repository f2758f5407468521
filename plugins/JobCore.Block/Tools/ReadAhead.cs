namespace JobCore.Block.Tools;

/// <summary>
/// A fixed set of large buffers and a first-in-first-out queue of reads in flight into them: callers start reads
/// while buffers are free and take the results in the order started. Buffers are allocated once (pinned, never
/// cleared) so a copy loop does not allocate per chunk.
/// </summary>
internal sealed class ReadAhead
{
    private readonly Stack<byte[]> _free;
    private readonly Queue<Slot> _pending = new();

    /// <summary>Allocates <paramref name="buffers"/> buffers of <paramref name="bufferSize"/> bytes.</summary>
    public ReadAhead(int buffers, int bufferSize)
    {
        _free = new Stack<byte[]>(buffers);
        for (var i = 0; i < buffers; i++)
        {
            _free.Push(GC.AllocateUninitializedArray<byte>(bufferSize, pinned: true));
        }
    }

    /// <summary>One read: where it came from and the buffer holding it.</summary>
    /// <param name="Offset">The offset read.</param>
    /// <param name="Buffer">The whole buffer (hand it back with <see cref="Return"/>).</param>
    /// <param name="Length">How many bytes were read into <paramref name="Buffer"/>.</param>
    /// <param name="Read">The read in flight.</param>
    internal readonly record struct Slot(long Offset, byte[] Buffer, int Length, Task Read)
    {
        /// <summary>The bytes read.</summary>
        public Memory<byte> Data => Buffer.AsMemory(0, Length);
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
        _pending.Enqueue(new Slot(offset, buffer, length, read(buffer.AsMemory(0, length)).AsTask()));
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
