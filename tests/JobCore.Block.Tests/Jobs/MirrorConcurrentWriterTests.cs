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

        // Rate-limited while the guest writes (so the writes meet a copy in progress), then unlimited to converge.
        var options = new MirrorJobOptions { Id = "w", Device = "src", Target = "dst", CopyMode = mode, TargetIsZero = true, Speed = 4L << 20 };
        Job job = await bed.StartAsync(options);
        await WhenTrackingAsync(options);
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
        job.SetSpeed(0);
        await bed.ExpectAsync("w:ready", "w:READY");
        Assert.IsTrue(during > 0, "some writes ran while the job was copying");
        Assert.IsTrue(job.Info.TotalProgress > initial, $"the total grew with the writes: {job.Info}");
        job.Complete();
        await bed.ExpectCompletedAsync("w");
        Assert.AreSame(bed.Graph.GetNode("dst"), guest.Node);
        await bed.AssertSameContentAsync(src, dst);
    }

    /// <summary>
    /// Write-blocking mode under bursts of concurrent writes that overlap each other (writes, write-zeroes, discards):
    /// every 128 KiB region gets one burst of four overlapping requests and is not written again, so if two of them
    /// reached the target in another order than the source, the difference stays (the bitmap calls the range clean).
    /// </summary>
    [TestMethod]
    [DataRow(11)]
    [DataRow(12)]
    [DataRow(13)]
    [DataRow(14)]
    [DataRow(15)]
    [DataRow(16)]
    public async Task Overlapping_concurrent_writes_in_write_blocking_mode_leave_the_target_equal_to_the_source(int seed)
    {
        const long size = 16L << 20;
        const int region = 128 << 10;
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", size);
        await MirrorTestBed.WriteAsync(src, 0x5a, (0, size));
        string dst = await bed.CreateQcow2Async("dst.qcow2", size);
        BlockNode source = await bed.OpenAsync("src", src);
        await bed.OpenAsync("dst", dst);
        BlockBackend guest = bed.Graph.AttachBackend("guest", source);

        var options = new MirrorJobOptions
        {
            Id = "o", Device = "src", Target = "dst", CopyMode = MirrorCopyMode.WriteBlocking, Granularity = 4096, TargetIsZero = true,
        };
        Job job = await bed.StartAsync(options);
        await WhenTrackingAsync(options);

        var random = new Random(seed);
        for (long start = 0; start < size; start += region)
        {
            // Four requests inside the region, each at least half of it, so every pair overlaps.
            var requests = Enumerable.Range(0, 4).Select(_ =>
            {
                int length = random.Next(region / 2, region + 1);
                long offset = start + random.Next(region - length + 1);
                var data = new byte[length];
                random.NextBytes(data);
                return (Kind: random.Next(8), Offset: offset, Data: data);
            }).ToArray();
            await Task.WhenAll(requests.Select(r => Task.Run(async () =>
            {
                switch (r.Kind)
                {
                    case 0:
                        await guest.DiscardAsync(r.Offset, r.Data.Length);
                        break;
                    case 1:
                        await guest.WriteZeroesAsync(r.Offset, r.Data.Length, mayUnmap: true);
                        break;
                    default:
                        await guest.WriteAsync(r.Offset, r.Data);
                        break;
                }
            }))).WaitAsync(MirrorTestBed.Timeout);
        }

        await bed.ExpectAsync("o:ready", "o:READY");
        job.Complete();
        await bed.ExpectCompletedAsync("o");
        Assert.AreSame(bed.Graph.GetNode("dst"), guest.Node);
        await bed.AssertSameContentAsync(src, dst);
    }

    /// <summary>
    /// A force cancel while the guest writes through in write-blocking mode: every guest request succeeds, before,
    /// during and after the cancel and after the target is deleted, and the source keeps the last data of each region.
    /// </summary>
    [TestMethod]
    public async Task Guest_writes_keep_working_across_a_force_cancel_in_write_blocking_mode()
    {
        const int region = 64 << 10;
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", Size);
        await MirrorTestBed.WriteAsync(src, 0x21, (0, Size)); // 32 MiB at 1 MiB/s: still copying when cancelled
        string dst = await bed.CreateQcow2Async("dst.qcow2", Size);
        BlockNode source = await bed.OpenAsync("src", src);
        await bed.OpenAsync("dst", dst);
        BlockBackend guest = bed.Graph.AttachBackend("guest", source);
        var options = new MirrorJobOptions
        {
            Id = "f", Device = "src", Target = "dst", CopyMode = MirrorCopyMode.WriteBlocking, TargetIsZero = true, Speed = 1 << 20,
        };
        Job job = await bed.StartAsync(options);
        await WhenTrackingAsync(options);

        using var stop = new CancellationTokenSource();
        int writes = 0;
        var last = new byte[4];
        async Task WriterAsync(int writer)
        {
            var data = new byte[region];
            byte round = 0;
            while (!stop.IsCancellationRequested)
            {
                round = (byte)((round % 250) + 1);
                Array.Fill(data, round);
                await guest.WriteAsync(writer * (Size / 4), data);
                last[writer] = round;
                Interlocked.Increment(ref writes);
            }
        }

        Task writers = Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(() => WriterAsync(w))));
        await MirrorTestBed.WaitForAsync(job, _ => Volatile.Read(ref writes) >= 40);
        await job.CancelAsync(force: true);
        await bed.ExpectAsync("f:aborting", "f:CANCELLED", "f:concluded", "f:null");
        await bed.Graph.RemoveAsync("dst");
        int before = Volatile.Read(ref writes);
        await MirrorTestBed.WaitForAsync(job, _ => Volatile.Read(ref writes) >= before + 40);
        await stop.CancelAsync();
        await writers.WaitAsync(MirrorTestBed.Timeout);

        var read = new byte[region];
        for (int w = 0; w < 4; w++)
        {
            await guest.ReadAsync(w * (Size / 4), read);
            Assert.IsTrue(read.All(b => b == last[w]), $"region {w} holds its last write ({last[w]})");
        }

        await bed.AssertCheckedAsync(src);
    }

    /// <summary>
    /// The guest is already writing when the job starts (an in-process writer, unlike a QMP client that waits for the
    /// reply): writes in flight while the graph inserts the filter are drained first, later ones pass the filter, so
    /// after complete the target equals the source. Sync=full on a target known to be zero marks only what block status
    /// calls allocated, so an unseen write to a fresh cluster would stay missing on the target.
    /// </summary>
    [TestMethod]
    [DataRow(MirrorCopyMode.Background)]
    [DataRow(MirrorCopyMode.WriteBlocking)]
    public async Task Writes_already_running_when_the_job_starts_end_up_on_the_target(MirrorCopyMode mode)
    {
        const long size = 16L << 20;
        await using var bed = new MirrorTestBed();
        string src = await bed.CreateQcow2Async("src.qcow2", size);
        await MirrorTestBed.WriteAsync(src, 0x33, (0, 4L << 20));
        string dst = await bed.CreateQcow2Async("dst.qcow2", size);
        BlockNode source = await bed.OpenAsync("src", src);
        await bed.OpenAsync("dst", dst);
        BlockBackend guest = bed.Graph.AttachBackend("guest", source);

        using var stop = new CancellationTokenSource();
        var writing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int writes = 0;
        async Task WriterAsync(int seed, long start)
        {
            var random = new Random(seed);
            var data = new byte[64 << 10];
            while (!stop.IsCancellationRequested)
            {
                int length = random.Next(1, data.Length);
                long offset = start + random.NextInt64((size / 2) - length);
                random.NextBytes(data.AsSpan(0, length));
                await guest.WriteAsync(offset, data.AsMemory(0, length));
                if (Interlocked.Increment(ref writes) == 20)
                {
                    writing.SetResult();
                }
            }
        }

        Task writers = Task.WhenAll(Task.Run(() => WriterAsync(3, 0)), Task.Run(() => WriterAsync(4, size / 2)));
        await writing.Task.WaitAsync(MirrorTestBed.Timeout);
        var options = new MirrorJobOptions { Id = "e", Device = "src", Target = "dst", CopyMode = mode, TargetIsZero = true, Speed = 4L << 20 };
        Job job = await bed.StartAsync(options);
        int atStart = Volatile.Read(ref writes);
        await MirrorTestBed.WaitForAsync(job, _ => Volatile.Read(ref writes) >= atStart + 200);
        await stop.CancelAsync();
        await writers.WaitAsync(MirrorTestBed.Timeout);
        job.SetSpeed(0);
        await bed.ExpectAsync("e:ready", "e:READY");
        job.Complete();
        await bed.ExpectCompletedAsync("e");
        Assert.AreSame(bed.Graph.GetNode("dst"), guest.Node);
        await bed.AssertSameContentAsync(src, dst);
    }

    // These tests start writing once the filter is in place, as a QMP client does after the reply (the test above
    // covers writers racing the insertion).
    private static Task WhenTrackingAsync(MirrorJobOptions options) => MirrorSetUp.WhenSetUpAsync(options).WaitAsync(MirrorTestBed.Timeout);
}
