using System.Text.Json;
using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Options;
using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Jobs;

/// <summary>
/// A real 3-layer qcow2 chain base ← mid ← top made by qemu-img/qemu-io (64 KiB clusters, 4 MiB), each layer with its
/// own byte pattern, opened in a fresh <see cref="BlockGraph"/> bottom-up (nodes <c>base</c>, <c>mid</c>, <c>top</c>)
/// with a <see cref="JobEngine"/> that runs stream and commit jobs; plus the expected guest views computed here, and
/// qemu-img checks of the result. Used by the stream and commit tests; one per test, in its own temp folder.
/// </summary>
internal sealed class StreamTestChain : IAsyncDisposable
{
    public const long Size = 4 << 20;
    public const int K = 1024;

    // Which byte ranges each layer writes (offset, length, pattern; pattern 0 = write-zeroes).
    public static readonly (long Offset, int Length, byte Pattern)[] BaseWrites = [(0, 4 << 20, 0x11)];
    public static readonly (long Offset, int Length, byte Pattern)[] MidWrites =
        [(512 * K, 1024 * K, 0x22), (2816 * K, 256 * K, 0x22), (3584 * K, 128 * K, 0)];
    public static readonly (long Offset, int Length, byte Pattern)[] TopWrites =
        [(1024 * K, 256 * K, 0x33), (3072 * K, 64 * K, 0x33)];

    private readonly string _dir;
    private readonly List<JobEvent> _consumed = [];
    private bool _graphClosed;

    private StreamTestChain(string dir)
    {
        _dir = dir;
        Graph = new BlockGraph();
        var registry = new JobTypeRegistry();
        registry.Add<StreamJob, StreamJobOptions>("stream", (_, _) => new StreamJob(Graph));
        registry.Add<CommitJob, CommitJobOptions>("commit", (_, _) => new CommitJob(Graph));
        registry.AddMirrorJobs(_ => Graph);
        Engine = new JobEngine(registry);
        Events = Engine.Subscribe();
    }

    public BlockGraph Graph { get; }

    public JobEngine Engine { get; }

    public JobEventSubscription Events { get; }

    public string BasePath => File("base.qcow2");

    public string MidPath => File("mid.qcow2");

    public string TopPath => File("top.qcow2");

    /// <summary>What the guest sees through base, mid+base and top+mid+base.</summary>
    public static byte[] BaseView => View(BaseWrites);

    public static byte[] MidView => View(BaseWrites, MidWrites);

    public static byte[] TopView => View(BaseWrites, MidWrites, TopWrites);

    public string File(string name) => Path.Combine(_dir, name);

    /// <summary>
    /// Makes the chain and opens it. <paramref name="inject"/> maps a layer name to a blkdebug <c>inject-error</c>
    /// JSON array put between that layer and its file. <paramref name="topOnly"/> opens only <c>top</c>, so mid and base
    /// are opened read-only from the headers with implicit names.
    /// </summary>
    public static async Task<StreamTestChain> CreateAsync(IReadOnlyDictionary<string, string>? inject = null, bool topOnly = false)
    {
        string dir = Path.Combine(Path.GetTempPath(), "jobcore-stream-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var chain = new StreamTestChain(dir);
        try
        {
            await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", chain.BasePath, Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", "base.qcow2", "-F", "qcow2", chain.MidPath);
            await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", "mid.qcow2", "-F", "qcow2", chain.TopPath);
            await WriteLayerAsync(chain.BasePath, BaseWrites);
            await WriteLayerAsync(chain.MidPath, MidWrites);
            await WriteLayerAsync(chain.TopPath, TopWrites);
            await chain.OpenAsync(inject ?? new Dictionary<string, string>(), topOnly);
            return chain;
        }
        catch
        {
            await chain.DisposeAsync();
            throw;
        }
    }

    public static byte[] View(params (long Offset, int Length, byte Pattern)[][] layers)
    {
        var view = new byte[Size];
        foreach (var layer in layers)
        {
            foreach (var (offset, length, pattern) in layer)
            {
                Array.Fill(view, pattern, (int)offset, length);
            }
        }

        return view;
    }

    public Task<Job> StreamAsync(StreamJobOptions options) => StreamJob.StartAsync(Engine, Graph, options);

    public Task<Job> CommitAsync(CommitJobOptions options) => CommitJob.StartAsync(Engine, Graph, options);

    /// <summary>Waits until <paramref name="job"/> concluded and returns its final snapshot.</summary>
    public static async Task<JobInfo> FinishAsync(Job job, int seconds = 60)
    {
        await job.Concluded.WaitAsync(TimeSpan.FromSeconds(seconds));
        return job.Info;
    }

    /// <summary>Waits for an event of <paramref name="job"/> that <paramref name="match"/> accepts; returns it.</summary>
    public async Task<JobEvent> WaitForEventAsync(string job, Func<JobEvent, bool> match, int seconds = 30)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var seen = new List<string>();
        try
        {
            while (true)
            {
                JobEvent e = await Events.Reader.ReadAsync(cts.Token);
                _consumed.Add(e);
                if (e.Job.Id != job)
                {
                    continue;
                }

                seen.Add(Describe(e));
                if (match(e))
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new AssertFailedException($"job '{job}' never sent the awaited event; saw: {string.Join(", ", seen)}");
        }
    }

    /// <summary>Polls <paramref name="condition"/> (progress has no event) until it holds; fails after 30 s.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }

    /// <summary>Waits until <paramref name="job"/> changes to <paramref name="status"/>.</summary>
    public Task<JobEvent> WaitForStatusAsync(string job, JobStatus status) =>
        WaitForEventAsync(job, e => e is JobStatusChangedEvent s && s.Status == status);

    /// <summary>Every event of <paramref name="job"/> so far, in short form (status names, <c>error:read:stop</c>, <c>completed</c>, ...).</summary>
    public List<string> DrainEvents(string job)
    {
        var list = _consumed.Where(e => e.Job.Id == job).Select(Describe).ToList();
        _consumed.RemoveAll(e => e.Job.Id == job);
        while (Events.Reader.TryRead(out JobEvent? e))
        {
            if (e.Job.Id == job)
            {
                list.Add(Describe(e));
            }
        }

        return list;
    }

    public static string Describe(JobEvent e) => e switch
    {
        JobStatusChangedEvent s => s.Status.WireName(),
        JobErrorEvent err => $"error:{err.Operation.WireName()}:{err.Action.WireName()}",
        JobCompletedEvent c => c.Error is null ? "completed" : "completed!" + c.Error,
        JobCancelledEvent => "cancelled",
        JobReadyEvent => "ready-event",
        JobPendingEvent => "pending-event",
        _ => e.GetType().Name,
    };

    /// <summary>Closes the graph (images are flushed) so the qemu tools see the final state.</summary>
    public async Task CloseGraphAsync()
    {
        if (!_graphClosed)
        {
            _graphClosed = true;
            await Engine.DisposeAsync();
            await Graph.DisposeAsync();
        }
    }

    /// <summary>Closes the graph, then: the guest view of <paramref name="image"/> (through its header's chain) must equal
    /// <paramref name="expected"/> (qemu-img compare) and every image must pass qemu-img check (no leaks either, also
    /// after injected write errors).</summary>
    public async Task VerifyAsync(string image, byte[] expected)
    {
        await CloseGraphAsync();
        string raw = File("expected-" + Guid.NewGuid().ToString("N") + ".raw");
        await System.IO.File.WriteAllBytesAsync(raw, expected);
        ToolResult compare = await QemuImg.ImgAsync("compare", "-f", "raw", "-F", "qcow2", raw, image);
        Assert.AreEqual(0, compare.ExitCode, $"guest view of {Path.GetFileName(image)} differs: {compare.All}");
        System.IO.File.Delete(raw);
        foreach (string path in new[] { BasePath, MidPath, TopPath })
        {
            ToolResult check = await QemuImg.ImgAsync("check", "-f", "qcow2", path);
            Assert.AreEqual(0, check.ExitCode, $"qemu-img check {Path.GetFileName(path)}: {check.All}");
        }
    }

    /// <summary>The backing file name recorded in <paramref name="image"/>'s header (null when standalone).</summary>
    public static async Task<string?> BackingOfAsync(string image)
    {
        ToolResult info = await QemuImg.ImgOkAsync("info", "--output=json", "-U", image);
        using JsonDocument doc = JsonDocument.Parse(info.Output);
        return doc.RootElement.TryGetProperty("backing-filename", out JsonElement b) ? b.GetString() : null;
    }

    public async ValueTask DisposeAsync()
    {
        await CloseGraphAsync();
        Events.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder must not fail the test.
        }
    }

    private static async Task WriteLayerAsync(string image, (long Offset, int Length, byte Pattern)[] writes)
    {
        var commands = writes.Select(w => w.Pattern == 0
            ? $"write -z {w.Offset} {w.Length}"
            : $"write -P {w.Pattern} {w.Offset} {w.Length}").ToArray();
        await QemuImg.IoCommandsAsync(image, "qcow2", commands);
    }

    private async Task OpenAsync(IReadOnlyDictionary<string, string> inject, bool topOnly)
    {
        string FileRef(string layer, string path)
        {
            string file = $$"""{"driver":"file","filename":{{JsonSerializer.Serialize(path)}}}""";
            return inject.TryGetValue(layer, out string? rules)
                ? $$"""{"driver":"blkdebug","image":{{file}},"inject-error":{{rules}}}"""
                : file;
        }

        if (!topOnly)
        {
            await Graph.AddAsync(BlockdevOptions.Parse($$"""{"driver":"qcow2","node-name":"base","file":{{FileRef("base", BasePath)}},"backing":null}"""));
            await Graph.AddAsync(BlockdevOptions.Parse($$"""{"driver":"qcow2","node-name":"mid","file":{{FileRef("mid", MidPath)}},"backing":"base"}"""));
            await Graph.AddAsync(BlockdevOptions.Parse($$"""{"driver":"qcow2","node-name":"top","file":{{FileRef("top", TopPath)}},"backing":"mid"}"""));
        }
        else
        {
            await Graph.AddAsync(BlockdevOptions.Parse($$"""{"driver":"qcow2","node-name":"top","file":{{FileRef("top", TopPath)}}}"""));
        }
    }
}
