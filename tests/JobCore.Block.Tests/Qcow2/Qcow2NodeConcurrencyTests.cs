using JobCore.Block.Nodes;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>
/// Data I/O runs concurrently (also of allocating writes: reserve under the lock, write without it, link under it);
/// metadata changes stay serialized, and requests touching a cluster whose allocation is in flight wait for it.
/// </summary>
[TestClass]
public sealed class Qcow2NodeConcurrencyTests
{
    [TestMethod]
    [Timeout(30_000, CooperativeCancellation = true)]
    public async Task Reads_and_overwrites_of_allocated_clusters_are_in_flight_together()
    {
        using var scratch = new ScratchFolder();
        string image = scratch.File("c.qcow2");
        await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = 4 << 20, ClusterSize = 65536 });
        await using var file = await FileNode.OpenAsync("file", image, readOnly: false);
        var gate = new GateNode(file);
        await using var node = await Qcow2Node.OpenAsync("qcow2", gate, readOnly: false);
        await node.WriteAsync(0, new byte[1 << 20]);
        await node.FlushAsync();

        gate.Hold = true;
        Task write = node.WriteAsync(0, new byte[65536]).AsTask();
        Task read = node.ReadAsync(524288, new byte[65536]).AsTask();
        await gate.WaitForHeldAsync(2).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.IsFalse(write.IsCompleted || read.IsCompleted, "both requests wait inside the file node at the same time");
        gate.Release();
        await Task.WhenAll(write, read).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [TestMethod]
    [Timeout(30_000, CooperativeCancellation = true)]
    public async Task Allocating_writes_to_different_fresh_clusters_are_in_flight_together()
    {
        using var scratch = new ScratchFolder();
        await using var gated = await GatedQcow2.CreateAsync(scratch.File("g.qcow2"));
        var (image, gate, node) = (gated.Image, gated.Gate, gated.Node);

        gate.Hold = true;
        byte[] a = Filled(0x61, 200_000);
        byte[] b = Filled(0x62, 65536);
        Task first = node.WriteAsync(1 << 20, a).AsTask();
        Task second = node.WriteAsync(3 << 20, b).AsTask();
        await gate.WaitForHeldAsync(2).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.IsFalse(first.IsCompleted || second.IsCompleted, "both allocating writes wait inside the file node at the same time");
        gate.Open();
        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));

        byte[] back = new byte[a.Length];
        await node.ReadAsync(1 << 20, back);
        CollectionAssert.AreEqual(a, back);
        back = new byte[b.Length];
        await node.ReadAsync(3 << 20, back);
        CollectionAssert.AreEqual(b, back);
        await node.DisposeAsync();
        await ImageData.AssertQemuCheckCleanAsync(image);
    }

    [TestMethod]
    [Timeout(30_000, CooperativeCancellation = true)]
    public async Task A_request_for_a_cluster_being_allocated_waits_and_reads_see_the_old_data_meanwhile()
    {
        using var scratch = new ScratchFolder();
        await using var gated = await GatedQcow2.CreateAsync(scratch.File("g.qcow2"));
        var (image, gate, node) = (gated.Image, gated.Gate, gated.Node);

        gate.Hold = true;
        const long Cluster = 2 << 20;
        byte[] a = Filled(0x41, 1000);
        byte[] b = Filled(0x42, 1000);
        byte[] c = Filled(0x43, 65536);
        // Each call runs synchronously up to the file node (everything it needs is cached) or up to its wait.
        Task first = node.WriteAsync(Cluster + 100, a).AsTask();
        Task sameCluster = node.WriteAsync(Cluster + 5000, b).AsTask();
        Task other = node.WriteAsync(Cluster + (3 * 65536), c).AsTask();
        Task zeroesThere = node.WriteZeroesAsync(Cluster + (3 * 65536), 65536, mayUnmap: true).AsTask();
        await gate.WaitForHeldAsync(2).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.AreEqual(2, gate.Held, "the second write to the cluster must wait for its allocation instead of allocating it again");
        Assert.IsFalse(sameCluster.IsCompleted || zeroesThere.IsCompleted, "requests on the cluster wait for the allocation in flight");

        // The allocation is not linked yet: a read sees the old (unallocated, zero) content and does not wait.
        byte[] during = Filled(0xff, 65536);
        await node.ReadAsync(Cluster, during).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.IsTrue(during.AsSpan().IndexOfAnyExcept((byte)0) < 0, "a read during the allocation sees the old mapping");

        gate.Open();
        await Task.WhenAll(first, sameCluster, other, zeroesThere).WaitAsync(TimeSpan.FromSeconds(10));
        byte[] expected = new byte[65536];
        a.CopyTo(expected, 100);
        b.CopyTo(expected, 5000);
        byte[] back = new byte[65536];
        await node.ReadAsync(Cluster, back);
        CollectionAssert.AreEqual(expected, back, "both writes to the cluster land in one allocation");
        await node.ReadAsync(Cluster + (3 * 65536), back);
        Assert.IsTrue(back.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the write-zeroes ran after the write it waited for");
        await node.DisposeAsync();
        await ImageData.AssertQemuCheckCleanAsync(image);
    }

    [TestMethod]
    [Timeout(30_000, CooperativeCancellation = true)]
    public async Task Partial_writes_from_several_writers_into_one_fresh_cluster_all_land()
    {
        using var scratch = new ScratchFolder();
        await using var gated = await GatedQcow2.CreateAsync(scratch.File("g.qcow2"));
        var (image, gate, node) = (gated.Image, gated.Gate, gated.Node);

        gate.Hold = true;
        byte[] expected = new byte[65536];
        var writes = new List<Task>();
        for (int i = 0; i < 16; i++)
        {
            byte[] piece = Filled((byte)(i + 1), 4096);
            piece.CopyTo(expected, i * 4096);
            writes.Add(node.WriteAsync((1 << 20) + (i * 4096), piece).AsTask());
        }

        await gate.WaitForHeldAsync(1).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.AreEqual(1, gate.Held, "one allocation for the cluster; the other writers wait for it");
        gate.Open();
        await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(10));
        byte[] back = new byte[65536];
        await node.ReadAsync(1 << 20, back);
        CollectionAssert.AreEqual(expected, back);
        await node.DisposeAsync();
        await ImageData.AssertQemuCheckCleanAsync(image);
    }

    [TestMethod]
    [Timeout(120_000, CooperativeCancellation = true)]
    [DataRow(512, false, 1)]
    [DataRow(512, true, 2)]
    [DataRow(4096, true, 3)]
    [DataRow(65536, false, 4)]
    [DataRow(65536, true, 5)]
    [DataRow(2097152, true, 6)]
    public async Task Many_concurrent_overlapping_allocating_writes_pass_qemu_check_and_compare(int clusterSize, bool withBacking, int seed)
    {
        using var scratch = new ScratchFolder();
        const int Size = 8 << 20;
        string image = scratch.File("m.qcow2");
        byte[] expected = new byte[Size];
        if (withBacking)
        {
            string baseImage = scratch.File("base.qcow2");
            await QemuImg.ImgOkAsync("create", "-f", "qcow2", baseImage, "8M");
            await QemuImg.IoCommandsAsync(baseImage, "qcow2", "write -P 0x5a 0 8M", "write -z 3M 1M", "write -P 0x33 5M 300k");
            expected = await ImageData.QemuRawAsync(baseImage, scratch);
            await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { BackingFile = "base.qcow2", BackingFormat = "qcow2", ClusterSize = clusterSize });
        }
        else
        {
            await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = Size, ClusterSize = clusterSize });
        }

        var rng = new Random(seed);
        await using (var opened = await OpenedQcow2.OpenAsync(image, readOnly: false))
        {
            Qcow2Node node = opened.Node;
            for (int round = 0; round < 40; round++)
            {
                // Requests of one round cover disjoint bytes of one window (so the result does not depend on their
                // order) but share guest clusters: small windows put many writers into the same cluster.
                long window = Math.Min(Size, (long)rng.Next(1, 9) * (round % 2 == 0 ? clusterSize : Math.Max(clusterSize, 65536)));
                long windowStart = rng.NextInt64(0, Size - window + 1);
                int requests = rng.Next(2, 25);
                long[] cuts = RandomCuts(rng, window, 2 * requests);
                var tasks = new List<Task>();
                for (int r = 0; r + 1 < cuts.Length; r += 2)
                {
                    int offset = (int)(windowStart + cuts[r]);
                    int length = (int)(cuts[r + 1] - cuts[r]);
                    int kind = rng.Next(16);
                    if (kind == 0)
                    {
                        expected.AsSpan(offset, length).Clear();
                        tasks.Add(node.WriteZeroesAsync(offset, length, mayUnmap: rng.Next(2) == 0).AsTask());
                    }
                    else if (kind == 1)
                    {
                        // Discard drops the whole clusters inside the range; partial ones stay as they are.
                        long first = (offset + (long)clusterSize - 1) / clusterSize * clusterSize;
                        long last = Math.Max(first, (offset + length) / clusterSize * clusterSize);
                        if (offset + length == Size)
                        {
                            last = Size;
                        }

                        expected.AsSpan((int)first, (int)(last - first)).Clear();
                        tasks.Add(node.DiscardAsync(offset, length).AsTask());
                    }
                    else
                    {
                        rng.NextBytes(expected.AsSpan(offset, length));
                        byte[] data = expected.AsSpan(offset, length).ToArray();
                        tasks.Add(node.WriteAsync(offset, data).AsTask());
                    }
                }

                await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
                if (round % 10 == 9)
                {
                    await node.FlushAsync();
                }
            }

            ImageData.AssertSame(expected, await ImageData.ReadAllAsync(node), "data read back before close");
        }

        await ImageData.AssertCleanAndEqualAsync(image, expected, scratch);
    }

    private static long[] RandomCuts(Random rng, long window, int count)
    {
        var cuts = new SortedSet<long>();
        count = (int)Math.Min(count, window + 1) & ~1;
        while (cuts.Count < count)
        {
            cuts.Add(rng.NextInt64(0, window + 1));
        }

        return [.. cuts];
    }

    private static byte[] Filled(byte value, int length)
    {
        byte[] data = new byte[length];
        Array.Fill(data, value);
        return data;
    }

    /// <summary>
    /// A fresh 4 MiB image (64 KiB clusters) opened through a <see cref="GateNode"/>, with its first cluster written so
    /// the L2 table and refcount block are cached (later allocating writes need no metadata I/O). Disposing opens the
    /// gate first, so a failed test does not hang in the node's dispose.
    /// </summary>
    private sealed class GatedQcow2 : IAsyncDisposable
    {
        private readonly FileNode _file;

        private GatedQcow2(string image, FileNode file, GateNode gate, Qcow2Node node)
        {
            Image = image;
            _file = file;
            Gate = gate;
            Node = node;
        }

        public string Image { get; }

        public GateNode Gate { get; }

        public Qcow2Node Node { get; }

        public static async Task<GatedQcow2> CreateAsync(string image)
        {
            await Qcow2Node.CreateAsync(image, new Qcow2CreateOptions { Size = 4 << 20, ClusterSize = 65536 });
            FileNode file = await FileNode.OpenAsync("file", image, readOnly: false);
            var gate = new GateNode(file);
            Qcow2Node node = await Qcow2Node.OpenAsync("qcow2", gate, readOnly: false);
            await node.WriteAsync(0, new byte[65536]);
            return new GatedQcow2(image, file, gate, node);
        }

        public async ValueTask DisposeAsync()
        {
            Gate.Open();
            await Node.DisposeAsync();
            await _file.DisposeAsync();
        }
    }

    /// <summary>A file wrapper that can hold data requests until released, counting how many are held.</summary>
    private sealed class GateNode(BlockNode inner) : BlockNode(inner.NodeName, inner.ReadOnly)
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _sync = new();
        private readonly List<(int Count, TaskCompletionSource Reached)> _waiters = [];
        private int _held;

        public bool Hold { get; set; }

        public int Held
        {
            get
            {
                lock (_sync)
                {
                    return _held;
                }
            }
        }

        public override string DriverName => inner.DriverName;

        public override long Size => inner.Size;

        public void Release() => _open.TrySetResult();

        /// <summary>Stops holding and lets every held request through.</summary>
        public void Open()
        {
            Hold = false;
            Release();
        }

        public Task WaitForHeldAsync(int count)
        {
            lock (_sync)
            {
                var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_held >= count)
                {
                    tcs.TrySetResult();
                }
                else
                {
                    _waiters.Add((count, tcs));
                }

                return tcs.Task;
            }
        }

        public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await PassAsync();
            await inner.ReadAsync(offset, buffer, cancellationToken);
        }

        public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
        {
            await PassAsync();
            await inner.WriteAsync(offset, data, cancellationToken);
        }

        public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default) =>
            inner.WriteZeroesAsync(offset, length, mayUnmap, cancellationToken);

        public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
            inner.DiscardAsync(offset, length, cancellationToken);

        public override ValueTask FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
            inner.GetBlockStatusAsync(offset, length, cancellationToken);

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

        private async Task PassAsync()
        {
            if (!Hold)
            {
                return;
            }

            lock (_sync)
            {
                _held++;
                foreach (var w in _waiters.Where(w => _held >= w.Count))
                {
                    w.Reached.TrySetResult();
                }
            }

            await _open.Task;
        }
    }
}
