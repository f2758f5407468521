using System.Buffers.Binary;

namespace JobCore.Block.Nodes;

/// <summary>
/// Reads and writes entries of a refcount block of any width (<c>refcount_order</c> 0..6): widths below 8 bits are
/// packed from the least significant bit of each byte, wider ones are big-endian integers.
/// </summary>
internal static class Qcow2Refcounts
{
    internal static ulong Get(ReadOnlySpan<byte> block, int order, int index)
    {
        switch (order)
        {
            case < 3:
                int bits = 1 << order;
                int bit = index * bits;
                return (ulong)((block[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1));
            case 3:
                return block[index];
            case 4:
                return BinaryPrimitives.ReadUInt16BigEndian(block[(index * 2)..]);
            case 5:
                return BinaryPrimitives.ReadUInt32BigEndian(block[(index * 4)..]);
            default:
                return BinaryPrimitives.ReadUInt64BigEndian(block[(index * 8)..]);
        }
    }

    /// <summary>Sets an entry; false when <paramref name="value"/> does not fit the width.</summary>
    internal static bool TrySet(Span<byte> block, int order, int index, ulong value)
    {
        int width = 1 << order;
        if (width < 64 && value >> width != 0)
        {
            return false;
        }

        switch (order)
        {
            case < 3:
                int bit = index * width;
                int mask = ((1 << width) - 1) << (bit & 7);
                block[bit >> 3] = (byte)((block[bit >> 3] & ~mask) | ((int)value << (bit & 7)));
                break;
            case 3:
                block[index] = (byte)value;
                break;
            case 4:
                BinaryPrimitives.WriteUInt16BigEndian(block[(index * 2)..], (ushort)value);
                break;
            case 5:
                BinaryPrimitives.WriteUInt32BigEndian(block[(index * 4)..], (uint)value);
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(block[(index * 8)..], value);
                break;
        }

        return true;
    }
}
