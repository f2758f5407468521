using JobCore.Block.Bitmaps;

namespace JobCore.Block.Tests.Bitmaps;

[TestClass]
public sealed class DirtyBitmapTests
{
    [TestMethod]
    [DataRow(0L)]
    [DataRow(256L)]
    [DataRow(511L)]
    [DataRow(1000L)]
    [DataRow(4097L)]
    public void Constructor_refuses_bad_granularity(long granularity)
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DirtyBitmap(1 << 20, granularity));
    }

    [TestMethod]
    public void Set_rounds_outwards_and_reset_rounds_inwards()
    {
        var bitmap = new DirtyBitmap(64 * 1024, 4096);
        bitmap.SetDirty(4095, 2);
        Assert.IsTrue(bitmap.IsDirty(0));
        Assert.IsTrue(bitmap.IsDirty(4096));
        Assert.IsFalse(bitmap.IsDirty(8192));
        Assert.AreEqual(8192L, bitmap.Count);

        bitmap.Reset(100, 8000); // covers no whole chunk
        Assert.AreEqual(8192L, bitmap.Count);
        bitmap.Reset(0, 4096);
        Assert.IsFalse(bitmap.IsDirty(0));
        Assert.AreEqual(4096L, bitmap.Count);
    }

    [TestMethod]
    public void Partial_last_chunk_counts_only_real_bytes_and_reset_to_end_clears_it()
    {
        var bitmap = new DirtyBitmap(10_000, 4096);
        bitmap.SetAll();
        Assert.AreEqual(10_000L, bitmap.Count);
        Assert.AreEqual(new DirtyRun(0, 10_000), bitmap.NextDirty(0));
        bitmap.Reset(8192, 10_000 - 8192);
        Assert.AreEqual(8192L, bitmap.Count);
        Assert.IsFalse(bitmap.IsDirty(9_999));
        Assert.IsFalse(bitmap.IsDirty(20_000));
    }

    [TestMethod]
    public void NextDirty_finds_runs_limits_length_and_take_clears()
    {
        var bitmap = new DirtyBitmap(1 << 20, 512);
        bitmap.SetDirty(70 * 512, 130 * 512);
        bitmap.SetDirty(900 * 512, 1);
        Assert.AreEqual(new DirtyRun(70 * 512, 130 * 512), bitmap.NextDirty(0));
        Assert.AreEqual(new DirtyRun(100 * 512, 100 * 512), bitmap.NextDirty(100 * 512 + 7));
        Assert.AreEqual(new DirtyRun(70 * 512, 64 * 512), bitmap.NextDirty(0, 64 * 512));
        Assert.AreEqual(new DirtyRun(70 * 512, 512), bitmap.NextDirty(0, 1));
        Assert.AreEqual(new DirtyRun(900 * 512, 512), bitmap.NextDirty(200 * 512));
        Assert.IsNull(bitmap.NextDirty(901 * 512));

        Assert.AreEqual(new DirtyRun(70 * 512, 30 * 512), bitmap.TakeNextDirty(0, 30 * 512));
        Assert.AreEqual(new DirtyRun(100 * 512, 100 * 512), bitmap.NextDirty(0));
        Assert.AreEqual(101L * 512, bitmap.Count);
        CollectionAssert.AreEqual(
            new[] { new DirtyRun(100 * 512, 100 * 512), new DirtyRun(900 * 512, 512) },
            bitmap.GetDirtyRuns().ToArray());
        bitmap.Clear();
        Assert.IsTrue(bitmap.IsEmpty);
        Assert.IsNull(bitmap.NextDirty(0));
    }

    [TestMethod]
    public void Resize_drops_and_adds_clean_chunks()
    {
        var bitmap = new DirtyBitmap(8192, 1024);
        bitmap.SetAll();
        bitmap.Resize(3000);
        Assert.AreEqual(3000L, bitmap.Count);
        bitmap.Resize(20_000);
        Assert.AreEqual(3072L, bitmap.Count);
        Assert.IsFalse(bitmap.IsDirty(5000));
    }

    [TestMethod]
    [DataRow(1, 512L, 100_000L)]
    [DataRow(2, 4096L, 1_000_000L)]
    [DataRow(3, 65536L, 10_000_001L)]
    [DataRow(4, 1024L, 64L * 1024 * 8 + 3)]
    public void Random_operations_match_a_byte_model(int seed, long granularity, long size)
    {
        var random = new Random(seed);
        var bitmap = new DirtyBitmap(size, granularity);
        long chunks = (size + granularity - 1) / granularity;
        var model = new bool[chunks];
        for (int step = 0; step < 400; step++)
        {
            long offset = random.NextInt64(size + granularity);
            long length = random.NextInt64(random.Next(2) == 0 ? granularity * 3 : size / 4 + 1);
            switch (random.Next(4))
            {
                case 0:
                case 1:
                    bitmap.SetDirty(offset, length);
                    for (long b = offset; b < Math.Min(offset + length, size); b += granularity - (b % granularity))
                    {
                        model[b / granularity] = true;
                    }

                    break;
                case 2:
                    bitmap.Reset(offset, length);
                    long end = Math.Min(offset + length, size);
                    for (long c = (offset + granularity - 1) / granularity; c < chunks; c++)
                    {
                        long chunkEnd = Math.Min((c + 1) * granularity, size);
                        if (chunkEnd <= end && c * granularity < end)
                        {
                            model[c] = false;
                        }
                    }

                    break;
                default:
                    var taken = bitmap.TakeNextDirty(offset, length + 1);
                    var expected = ModelNext(model, granularity, size, offset, length + 1);
                    Assert.AreEqual(expected, taken, $"step {step}");
                    if (taken is { } t)
                    {
                        for (long c = t.Offset / granularity; c * granularity < t.End; c++)
                        {
                            model[c] = false;
                        }
                    }

                    break;
            }

            long probe = random.NextInt64(size);
            Assert.AreEqual(model[probe / granularity], bitmap.IsDirty(probe), $"step {step} probe {probe}");
            Assert.AreEqual(ModelCount(model, granularity, size), bitmap.Count, $"step {step}");
            long from = random.NextInt64(size);
            Assert.AreEqual(ModelNext(model, granularity, size, from, long.MaxValue), bitmap.NextDirty(from), $"step {step}");
        }
    }

    private static long ModelCount(bool[] model, long granularity, long size)
    {
        long count = 0;
        for (long c = 0; c < model.Length; c++)
        {
            if (model[c])
            {
                count += Math.Min((c + 1) * granularity, size) - (c * granularity);
            }
        }

        return count;
    }

    private static DirtyRun? ModelNext(bool[] model, long granularity, long size, long from, long maxLength)
    {
        if (from >= size)
        {
            return null;
        }

        long c = from / granularity;
        while (c < model.Length && !model[c])
        {
            c++;
        }

        if (c == model.Length)
        {
            return null;
        }

        long start = c * granularity;
        long limit = maxLength >= long.MaxValue - start ? long.MaxValue : start + maxLength;
        while (c < model.Length && model[c] && c * granularity < limit)
        {
            c++;
        }

        return new DirtyRun(start, Math.Min(c * granularity, size) - start);
    }
}
