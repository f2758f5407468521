using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Jobs;

/// <summary>Mirror while a guest writes through the source: after complete the target equals the source.</summary>
[TestClass]
public sealed class MirrorConcurrentWriterTests
{
    private const long Size = 32L << 20;

    [TestMethod]
    [DataRow(MirrorCopyMode.Background)]
    [DataRow(MirrorCopyMode.WriteBlocking)]
    public async Task Random_writes_during_the_copy_end_up_on_the_target(MirrorCopyMode mode)
    {
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", Size);
        await MirrorTestBed.WriteAsync(src, 0x21, (0, 12L << 20), (20L << 20, 8L << 20));
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size);
        BlockNode source = await bed.OpenAsync("src", src);
        await bed.OpenAsync("dst", dst);
        BlockBackend guest = bed.Graph.AttachBackend("guest", source);

        Job job = await bed.StartAsync(new MirrorJobOptions { Id = "w", Device = "src", Target = "dst", CopyMode = mode, TargetIsZero = true });
        long initial = 20L << 20;

        // Two writers on disjoint halves (a guest never has overlapping writes in flight), each 600 writes of
        // random data, some of them write-zeroes, at unaligned offsets.
        int during = 0;
        async Task WriterAsync(int seed, long start)
        {
            var random = new Random(seed);
            var data = new byte[96 << 10];
            for (int i = 0; i < 600; i++)
            {
                int length = random.Next(1, data.Length);
                long offset = start + random.NextInt64((Size / 2) - length);
                if (i % 7 == 0)
                {
                    await guest.WriteZeroesAsync(offset, length, mayUnmap: true);
                }
                else
                {
                    random.NextBytes(data.AsSpan(0, length));
                    await guest.WriteAsync(offset, data.AsMemory(0, length));
                }

                if (!job.Info.Ready)
                {
                    Interlocked.Increment(ref during);
                }
            }
        }

        await Task.WhenAll(Task.Run(() => WriterAsync(1, 0)), Task.Run(() => WriterAsync(2, Size / 2))).WaitAsync(MirrorTestBed.Timeout);
        await bed.ExpectAsync("w:ready", "w:READY");
        Assert.IsTrue(during > 0, "some writes ran while the job was copying");
        Assert.IsTrue(job.Info.TotalProgress > initial, $"the total grew with the writes: {job.Info}");
        job.Complete();
        await bed.ExpectCompletedAsync("w");
        Assert.AreSame(bed.Graph.GetNode("dst"), guest.Node);
        await bed.AssertSameContentAsync(src, dst);
    }
}
