using JobCore.Block.Nodes;

namespace JobCore.Block.Tests.Qcow2;

/// <summary>Data I/O on allocated clusters runs concurrently; metadata changes stay serialized.</summary>
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

    /// <summary>A file wrapper that can hold data requests until released, counting how many are held.</summary>
    private sealed class GateNode(BlockNode inner) : BlockNode(inner.NodeName, inner.ReadOnly)
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _sync = new();
        private readonly List<(int Count, TaskCompletionSource Reached)> _waiters = [];
        private int _held;

        public bool Hold { get; set; }

        public override string DriverName => inner.DriverName;

        public override long Size => inner.Size;

        public void Release() => _open.TrySetResult();

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
