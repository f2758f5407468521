using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Qcow2;

[TestClass]
public sealed class Qcow2TableCacheTests
{
    [TestMethod]
    public void Eviction_drops_least_recently_used_clean_tables_and_keeps_dirty_ones()
    {
        var cache = new Qcow2TableCache(4);
        for (long i = 0; i < 6; i++)
        {
            cache.Add(i * 512, new byte[512], dirty: i == 0);
        }

        Assert.IsTrue(cache.TryGet(512, out _), "touching table 1 makes it recent");
        cache.EvictClean();
        Assert.AreEqual(4, cache.Count);
        Assert.IsTrue(cache.Contains(0), "dirty tables are never evicted");
        Assert.IsTrue(cache.Contains(512));
        Assert.IsFalse(cache.Contains(1024));
        Assert.IsFalse(cache.Contains(1536));
    }

    [TestMethod]
    public void Dirty_tables_come_back_sorted_by_offset_until_marked_clean()
    {
        var cache = new Qcow2TableCache(8);
        var a = cache.Add(4096, new byte[512], dirty: false);
        cache.Add(1024, new byte[512], dirty: true);
        cache.MarkDirty(a);
        cache.MarkDirty(a);
        CollectionAssert.AreEqual(new long[] { 1024, 4096 }, cache.DirtyByOffset().Select(t => t.Offset).ToArray());
        cache.MarkAllClean();
        Assert.AreEqual(0, cache.DirtyCount);
        Assert.IsFalse(a.Dirty);
    }
}
