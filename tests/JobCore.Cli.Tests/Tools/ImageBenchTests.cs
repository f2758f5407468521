using JobCore.Block.Nodes;
using JobCore.Block.Tools;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class ImageBenchTests
{
    [TestMethod]
    public void Defaults_are_qemu_imgs()
    {
        var r = ImageBenchRequest.Parse(false, null, null, null, null, null, null);

        Assert.AreEqual(new ImageBenchRequest(false, 75000, 64, 0, 4096, 4096, 0), r);
        Assert.AreEqual("Sending 75000 read requests, 4096 bytes each, 64 in parallel (starting at offset 0, step size 4096)\n", r.Header);
    }

    [TestMethod]
    public void Numbers_take_C_prefixes_and_sizes_take_suffixes()
    {
        var r = ImageBenchRequest.Parse(true, "0x10", "010", "1M", "1.5k", "0", "0x41");

        Assert.AreEqual(new ImageBenchRequest(true, 16, 8, 1 << 20, 1536, 1536, 0x41), r);
        Assert.AreEqual("Sending 16 write requests, 1536 bytes each, 8 in parallel (starting at offset 1048576, step size 1536)\n", r.Header);
    }

    [TestMethod]
    [DataRow("count", "x", "Invalid request count specified")]
    [DataRow("count", "-1", "Invalid request count specified")]
    [DataRow("count", "3000000000", "Invalid request count specified")]
    [DataRow("count", "0x", "Invalid request count specified")]
    [DataRow("depth", "0", "Invalid queue depth specified")]
    [DataRow("depth", "08", "Invalid queue depth specified")]
    [DataRow("offset", "-1", "Invalid offset specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.")]
    [DataRow("size", "x", "Invalid buffer size specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.")]
    [DataRow("size", "2G", "Invalid buffer size specified. Must be between 0 and 2147483647.")]
    [DataRow("step", "1.0001k", "Invalid step_size specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.")]
    [DataRow("step", "4G", "Invalid step_size specified. Must be between 0 and 2147483647.")]
    [DataRow("pattern", "256", "Invalid pattern byte specified")]
    [DataRow("pattern", "a", "Invalid pattern byte specified")]
    public void Bad_values_get_qemu_imgs_messages(string option, string value, string message)
    {
        string? Get(string name) => name == option ? value : null;

        var e = Assert.ThrowsExactly<ImageToolException>(() =>
            ImageBenchRequest.Parse(false, Get("count"), Get("depth"), Get("offset"), Get("size"), Get("step"), Get("pattern")));

        Assert.AreEqual(message, e.Message);
    }

    [TestMethod]
    public void Requests_after_the_first_wrap_at_the_image_end()
    {
        var r = new ImageBenchRequest(false, 10, 1, 63L << 20, 1 << 20, 1 << 20, 0);

        Assert.AreEqual(63L << 20, r.OffsetOf(0, 64L << 20));
        Assert.AreEqual(0, r.OffsetOf(1, 64L << 20));
        Assert.AreEqual(5L << 20, r.OffsetOf(6, 64L << 20));
        // The first request is not wrapped: past the end it fails, as in qemu-img.
        Assert.AreEqual(70L << 20, (r with { Offset = 70L << 20 }).OffsetOf(0, 64L << 20));
        Assert.AreEqual(0, r.OffsetOf(3, 0));
    }

    [TestMethod]
    public void The_footer_has_milliseconds()
    {
        Assert.AreEqual("Run completed in 1.235 seconds.\n", ImageBenchRequest.Footer(TimeSpan.FromMilliseconds(1234.6)));
        Assert.AreEqual("Run completed in 0.000 seconds.\n", ImageBenchRequest.Footer(TimeSpan.Zero));
    }

    [TestMethod]
    [DataRow("bogus", false, "Invalid cache mode")]
    [DataRow("writeback", true, "Could not open 'f.img': aio=native was specified, but it requires cache.direct=on, which was not specified.")]
    [DataRow("none", false, "Cache mode 'none' is not supported by jobctl img bench: only writeback (page cache, flushed at the end of a write run; no O_DIRECT)")]
    [DataRow("unsafe", false, "Cache mode 'unsafe' is not supported by jobctl img bench: only writeback (page cache, flushed at the end of a write run; no O_DIRECT)")]
    public void Cache_modes_other_than_writeback_are_refused(string mode, bool nativeAio, string message)
    {
        var e = Assert.ThrowsExactly<ImageToolException>(() => ImageBench.CheckCacheMode(mode, nativeAio, "f.img"));

        Assert.AreEqual(message, e.Message);
    }

    [TestMethod]
    public void Writeback_is_the_default()
    {
        ImageBench.CheckCacheMode(null, false, "f.img");
        ImageBench.CheckCacheMode("writeback", false, "f.img");
    }

    [TestMethod]
    public async Task A_write_run_sends_every_request_once_at_most_depth_at_a_time_then_flushes()
    {
        var node = new RecordingNode(1 << 20);
        var request = new ImageBenchRequest(true, 300, 5, 4096, 4096, 8192, 0x5a);

        await ImageBench.RunAsync(node, request);

        var expected = Enumerable.Range(0, 300).Select(k => request.OffsetOf(k, 1 << 20)).Order().ToList();
        CollectionAssert.AreEqual(expected, node.Requests.Select(q => q.Offset).Order().ToList());
        Assert.IsTrue(node.Requests.All(q => q.Write && q.Length == 4096 && q.AllPattern == 0x5a));
        Assert.IsLessThanOrEqualTo(5, node.MaxInFlight);
        Assert.AreEqual(1, node.Flushes);
    }

    [TestMethod]
    public async Task A_read_run_reads_and_does_not_flush()
    {
        var node = new RecordingNode(1 << 20);

        await ImageBench.RunAsync(node, new ImageBenchRequest(false, 40, 64, 0, 65536, 65536, 0));

        Assert.HasCount(40, node.Requests);
        Assert.IsTrue(node.Requests.All(q => !q.Write));
        Assert.AreEqual(0, node.Flushes);
    }

    [TestMethod]
    public async Task A_request_past_the_end_fails_like_qemu_img_and_is_not_sent()
    {
        var node = new RecordingNode(1 << 20);

        var e = await Assert.ThrowsExactlyAsync<ImageToolException>(() =>
            ImageBench.RunAsync(node, new ImageBenchRequest(true, 400, 4, 0, 3000, 3000, 1)));

        Assert.AreEqual("Failed request: Input/output error", e.Message);
        Assert.IsTrue(node.Requests.All(q => q.Offset + q.Length <= node.Size));
        Assert.AreEqual(0, node.Flushes);
    }

    [TestMethod]
    public async Task No_requests_is_an_empty_run()
    {
        var node = new RecordingNode(4096);

        await ImageBench.RunAsync(node, new ImageBenchRequest(false, 0, 64, 0, 4096, 4096, 0));

        Assert.IsEmpty(node.Requests);
    }

    /// <summary>Records every request (thread-safe) and how many were in flight at once.</summary>
    private sealed class RecordingNode(long size) : BlockNode("rec", readOnly: false)
    {
        private readonly Lock _lock = new();
        private int _inFlight;

        public List<(long Offset, int Length, bool Write, int AllPattern)> Requests { get; } = [];

        public int MaxInFlight { get; private set; }

        public int Flushes { get; private set; }

        public override string DriverName => "rec";

        public override long Size => size;

        public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            await RecordAsync(offset, buffer.Length, false, -1);

        public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
        {
            var first = data.Span[0];
            await RecordAsync(offset, data.Length, true, data.Span.IndexOfAnyExcept(first) < 0 ? first : -1);
        }

        private async Task RecordAsync(long offset, int length, bool write, int pattern)
        {
            lock (_lock)
            {
                Requests.Add((offset, length, write, pattern));
                MaxInFlight = Math.Max(MaxInFlight, ++_inFlight);
            }

            await Task.Yield();
            lock (_lock)
            {
                _inFlight--;
            }
        }

        public override ValueTask FlushAsync(CancellationToken cancellationToken = default)
        {
            Flushes++;
            return ValueTask.CompletedTask;
        }

        public override ValueTask WriteZeroesAsync(long offset, long length, bool mayUnmap, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
