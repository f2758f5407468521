using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Qcow2;

[TestClass]
public sealed class Qcow2RefcountsTests
{
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    [DataRow(5)]
    [DataRow(6)]
    public void Entries_of_every_width_round_trip_without_touching_neighbours(int order)
    {
        int bits = 1 << order;
        byte[] block = new byte[512];
        int entries = 512 * 8 / bits;
        ulong max = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        var rng = new Random(order);
        ulong[] model = new ulong[entries];
        for (int i = 0; i < 5000; i++)
        {
            int index = rng.Next(entries);
            ulong value = (ulong)rng.NextInt64() & max;
            Assert.IsTrue(Qcow2Refcounts.TrySet(block, order, index, value));
            model[index] = value;
        }

        for (int i = 0; i < entries; i++)
        {
            Assert.AreEqual(model[i], Qcow2Refcounts.Get(block, order, i), $"entry {i}");
        }

        if (bits < 64)
        {
            Assert.IsFalse(Qcow2Refcounts.TrySet(block, order, 0, max + 1), "a value wider than the entry must be refused");
        }
    }

    [TestMethod]
    public void Narrow_entries_are_packed_from_the_least_significant_bit_and_wide_ones_big_endian()
    {
        byte[] block = new byte[8];
        Qcow2Refcounts.TrySet(block, 0, 1, 1);
        Assert.AreEqual(0b10, block[0]);
        Qcow2Refcounts.TrySet(block, 2, 1, 0xA);
        Assert.AreEqual(0xA0, block[0] & 0xF0);
        Array.Clear(block);
        Qcow2Refcounts.TrySet(block, 4, 1, 0x0102);
        CollectionAssert.AreEqual(new byte[] { 0, 0, 1, 2, 0, 0, 0, 0 }, block);
    }
}
